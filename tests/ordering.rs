//! PROTOCOL.md section 3.4: one order for everyone, each sender's lines in
//! the order sent, with many clients sending at once.
mod common;
mod support;

use std::sync::{Arc, Barrier};

use support::room;

const CLIENTS: usize = 8;
const LINES: usize = 50;

/// §3.4 "All users see all lines in one and the same order, and each user's
/// lines in the order that user sent them": 8 clients each send 50 lines at
/// once from their own threads; every receiver sees one identical sequence.
#[test]
fn concurrent_senders_all_see_one_order() {
    let names: Vec<String> = (0..CLIENTS).map(|i| format!("user{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_s, clients) = room(&["--rate", "0"], &refs);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for k in 0..LINES {
                    // Vary the write pattern: single lines and small batches.
                    if k % 5 == 0 && k + 1 < LINES {
                        c.send_raw(format!("m{i}-{k}\nm{i}-{}\n", k + 1).as_bytes());
                    } else if k % 5 != 1 {
                        c.send(&format!("m{i}-{k}"));
                    }
                }
                let mut seen = Vec::with_capacity(CLIENTS * LINES);
                while seen.len() < CLIENTS * LINES {
                    let l = c.line();
                    assert!(l.starts_with("user"), "unexpected line {l:?}");
                    seen.push(l);
                }
                seen
            })
        })
        .collect();
    let seqs: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, s) in seqs.iter().enumerate().skip(1) {
        if let Some(k) = (0..s.len()).find(|&k| s[k] != seqs[0][k]) {
            panic!(
                "user{i} diverges from user0 at line {k}: {:?} vs {:?}",
                s[k], seqs[0][k]
            );
        }
    }
    for i in 0..CLIENTS {
        let prefix = format!("user{i}: ");
        let mine: Vec<&str> = seqs[0]
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect();
        let want: Vec<String> = (0..LINES).map(|k| format!("m{i}-{k}")).collect();
        assert_eq!(mine, want, "user{i}'s lines out of order or missing");
    }
}
