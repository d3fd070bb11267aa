//! What the history store costs per transaction and per line.
//!
//! ```sh
//! cargo run --release --example history_store -- DIR [TURNS] [LINES_PER_TURN]
//! ```
//!
//! Creates `DIR/history-cost.db` afresh (keep 200), appends `TURNS` turns
//! (default 20000) of `LINES_PER_TURN` lines (default 1) of 60 bytes, and
//! prints the time per `append` (mean and percentiles: the tail shows the WAL
//! checkpoints) and per line. Put DIR on tmpfs and on a disk to compare.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatroom::store::Store;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: history_store DIR [TURNS] [LINES]"),
    );
    let turns: u64 = args.next().map_or(20_000, |a| a.parse().expect("TURNS"));
    let per_turn: u64 = args.next().map_or(1, |a| a.parse().expect("LINES"));
    let path = dir.join("history-cost.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let (mut store, _) = Store::open(&path, 200).unwrap_or_else(|e| panic!("{e}"));

    let text = format!("alice: {}", "x".repeat(53));
    let mut times = Vec::with_capacity(turns as usize);
    let started = Instant::now();
    for turn in 0..turns {
        let first = turn * per_turn + 1;
        let t = Instant::now();
        store
            .append((first..first + per_turn).map(|id| (id, text.as_str())))
            .unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed());
    }
    let total = started.elapsed();

    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let lines = turns * per_turn;
    println!("{} on {}", path.display(), file_system(&dir));
    println!("{turns} transactions of {per_turn} lines: {lines} lines in {total:.2?}");
    println!(
        "per transaction: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        us(total) / turns as f64,
        us(at(0.5)),
        us(at(0.99)),
        us(at(0.999)),
        us(at(1.0))
    );
    println!("per line: {:.2} µs", us(total) / lines as f64);
    println!(
        "over 1 ms: {}",
        times.iter().filter(|t| t.as_micros() > 1000).count()
    );
    for suffix in ["", "-wal"] {
        let name = format!("{}{suffix}", path.display());
        let size = std::fs::metadata(&name).map_or(0, |m| m.len());
        println!("{name}: {size} bytes");
    }
}

/// The file system type of `dir`, from `/proc/self/mounts` (longest match).
fn file_system(dir: &std::path::Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "?".to_owned(), |(_, kind)| kind)
}
