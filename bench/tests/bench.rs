//! `chat-bench` runs small loads against a real server and reports what was
//! lost; here it must lose nothing. Correctness only: no speed is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `chat-server` binary the bench runs against.
///
/// `CHAT_SERVER=PATH` names one (for instance a server built on another
/// branch). Otherwise cargo builds it here: an integration test only sees
/// its own package's binaries (`CARGO_BIN_EXE_*`) and artifact dependencies
/// are not in stable cargo, so the test runs `cargo build -p chatroom --bin
/// chat-server` in its own profile and target directory, which puts it next
/// to `chat-bench`, where `chat-bench` looks by default. Cargo has released
/// its build lock when tests run; after `cargo test` at the root (which
/// builds every binary of both crates before any test runs) this is a
/// no-op, and after `cargo test -p chat-bench` it brings the server up to
/// date instead of testing a stale one.
fn server() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("CHAT_SERVER") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "CHAT_SERVER={} is not a file", p.display());
            return p;
        }
        let bench = Path::new(env!("CARGO_BIN_EXE_chat-bench"));
        let dir = bench.parent().expect("chat-bench has a directory");
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => panic!("no profile directory in {}", bench.display()),
        };
        let target_dir = dir.parent().expect("a target directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "-p", "chatroom", "--bin", "chat-server"])
            .arg("--profile")
            .arg(profile)
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("running {cargo:?} to build chat-server: {e}"));
        assert!(status.success(), "cargo could not build chat-server");
        let server = dir.join("chat-server");
        assert!(server.is_file(), "no {} after the build", server.display());
        server
    })
}

fn bench(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .arg("--server")
        .arg(server())
        .arg("--json")
        .output()
        .expect("run chat-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        format!("{stdout}\n--- stderr:\n{stderr}"),
    )
}

/// Pulls `"key":value` out of the one-line JSON report.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn fanout_delivers_every_line_to_every_client() {
    let (ok, out) = bench(&[
        "fanout", "-n", "12", "-s", "3", "-r", "150", "-d", "1", "--warmup", "0.2",
    ]);
    assert!(ok, "chat-bench fanout failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "12", "{out}");
    assert_eq!(
        field(&out, "joins"),
        "78",
        "12 * 13 / 2 join notices: {out}"
    );
    // 1.2 s x 150 lines/s = 180 lines, each to all 12 clients.
    assert_eq!(field(&out, "lines"), "180", "{out}");
    assert_eq!(field(&out, "expected"), "2160", "{out}");
    assert_eq!(field(&out, "received"), "2160", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "reordered"), "0", "{out}");
    assert_eq!(field(&out, "dropped"), "0", "{out}");
    assert_eq!(field(&out, "tls"), "false", "{out}");
}

/// `--cluster 2`: a real redis-server and two servers of one room, the
/// clients spread over them; every line still reaches every client, in
/// each sender's order, and Redis's work is reported. Needs redis-server
/// (Debian: apt-get install redis-server; scripts/test.sh installs it).
#[test]
fn fanout_over_a_cluster_delivers_every_line_to_every_client() {
    let (ok, out) = bench(&[
        "fanout",
        "--cluster",
        "2",
        "-n",
        "12",
        "-s",
        "4",
        "-r",
        "150",
        "-d",
        "1",
        "--warmup",
        "0.2",
    ]);
    assert!(ok, "chat-bench fanout --cluster 2 failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "12", "{out}");
    assert_eq!(field(&out, "expected"), "2160", "{out}");
    assert_eq!(field(&out, "received"), "2160", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "reordered"), "0", "{out}");
    assert_ne!(field(&out, "redis_cpu_s"), "null", "{out}");
    assert_ne!(field(&out, "redis_evals"), "0", "{out}");
}

#[test]
fn connect_logs_everyone_in_and_one_line_reaches_all() {
    let (ok, out) = bench(&["connect", "-n", "60", "--lines", "2", "--settle", "0.2"]);
    assert!(ok, "chat-bench connect failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "60", "{out}");
    assert_eq!(
        field(&out, "joins"),
        "1830",
        "60 * 61 / 2 join notices: {out}"
    );
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
    assert_eq!(field(&out, "ok"), "true", "{out}");
}

#[test]
fn floor_reaches_every_client_through_the_bare_broadcaster() {
    let (ok, out) = bench(&["floor", "-n", "40", "--lines", "2"]);
    assert!(ok, "chat-bench floor failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "40", "{out}");
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
}

#[test]
fn connect_with_a_cap_on_logins_in_flight_logs_everyone_in() {
    let (ok, out) = bench(&[
        "connect",
        "-n",
        "60",
        "--inflight",
        "7",
        "--lines",
        "1",
        "--settle",
        "0.2",
    ]);
    assert!(ok, "chat-bench connect --inflight failed:\n{out}");
    assert_eq!(field(&out, "inflight"), "7", "{out}");
    assert_eq!(field(&out, "logged_in"), "60", "{out}");
    assert_eq!(field(&out, "joins"), "1830", "{out}");
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
}

/// With history in the room, every newcomer is sent the server's
/// --join-history (20) lines of it before its join notice; the bench
/// counts them apart from the join notices.
#[test]
fn connect_with_seeded_history_replays_it_to_every_newcomer() {
    let (ok, out) = bench(&[
        "connect", "-n", "30", "--seed", "25", "--lines", "1", "--settle", "0.2",
    ]);
    assert!(ok, "chat-bench connect --seed failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "30", "{out}");
    assert_eq!(field(&out, "joins"), "465", "30 * 31 / 2: {out}");
    assert_eq!(field(&out, "replayed"), "600", "20 lines to each: {out}");
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
}

/// `--since ID`: every client resumes after ID. In a room that announces
/// joins only while it holds one user, the seed's join is id 1, its 20
/// lines 2 to 21, its leave 22, the first client's join 23 (the others are
/// quiet): /since 2 replays 20 lines to the first client, 21 to each other.
/// Without history the same login gets a "no longer kept" notice instead.
#[test]
fn connect_with_since_resumes_every_client_after_the_id() {
    let args = [
        "connect",
        "-n",
        "30",
        "--seed",
        "20",
        "--since",
        "2",
        "--lines",
        "1",
        "--settle",
        "0.2",
        "--server-arg=--announce-limit=1",
    ];
    let (ok, out) = bench(&args);
    assert!(ok, "chat-bench connect --since failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "30", "{out}");
    assert_eq!(field(&out, "replayed"), "629", "20 + 29 * 21: {out}");
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
    let mut none = args.to_vec();
    none.push("--server-arg=--history=0");
    let (ok, out) = bench(&none);
    assert!(ok, "chat-bench connect --since, no history, failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "30", "{out}");
    assert_eq!(field(&out, "replayed"), "0", "{out}");
}

/// Three senders paste 40 lines of 4,000 B each at the same instant, twice,
/// to 50 readers. The server is given room for a whole burst per reader
/// (`--max-pending` 1 MiB, about twice a burst) so that this checks the
/// bench's counting, not the server's limits: every line to every user,
/// in one order, nobody dropped.
#[test]
fn burst_reaches_every_reader_in_one_order() {
    let (ok, out) = bench(&[
        "burst",
        "-n",
        "50",
        "-s",
        "3",
        "-l",
        "40",
        "-b",
        "4000",
        "-r",
        "2",
        "--pause",
        "0.2",
        "--server-arg=--max-pending=1048576",
    ]);
    assert!(ok, "chat-bench burst failed:\n{out}");
    assert_eq!(field(&out, "logged_in"), "53", "{out}");
    // 2 bursts x 3 senders x 40 lines, each to all 53 users.
    assert_eq!(field(&out, "lines"), "240", "{out}");
    assert_eq!(field(&out, "expected"), "12720", "{out}");
    assert_eq!(field(&out, "received"), "12720", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "reordered"), "0", "{out}");
    assert_eq!(field(&out, "dropped"), "0", "{out}");
    assert_eq!(field(&out, "complete"), "53", "{out}");
    assert_eq!(field(&out, "orders"), "1", "{out}");
    assert_eq!(field(&out, "same_order"), "true", "{out}");
    assert_eq!(field(&out, "samples"), "12720", "{out}");
}

#[test]
fn fanout_over_tls_delivers_every_line_to_every_client() {
    let (ok, out) = bench(&[
        "--tls", "fanout", "-n", "12", "-s", "3", "-r", "150", "-d", "1", "--warmup", "0.2",
    ]);
    assert!(ok, "chat-bench --tls fanout failed:\n{out}");
    assert_eq!(field(&out, "tls"), "true", "{out}");
    assert_eq!(field(&out, "logged_in"), "12", "{out}");
    assert_eq!(field(&out, "expected"), "2160", "{out}");
    assert_eq!(field(&out, "received"), "2160", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "dropped"), "0", "{out}");
}

#[test]
fn handshakes_complete_and_resume() {
    for resume in [false, true] {
        let mut args = vec!["handshakes", "-d", "1", "--inflight", "4"];
        if resume {
            args.push("--resume");
        }
        let (ok, out) = bench(&args);
        assert!(ok, "chat-bench {args:?} failed:\n{out}");
        assert_eq!(field(&out, "failed"), "0", "{out}");
        assert_ne!(field(&out, "done"), "0", "{out}");
        let resumed: u64 = field(&out, "resumed").parse().unwrap();
        assert_eq!(resumed > 0, resume, "{out}");
    }
}

/// The fan-out with every client over WebSocket: the same counts as over
/// TCP, nothing lost.
#[test]
fn fanout_over_websocket_delivers_every_line_to_every_client() {
    let (ok, out) = bench(&[
        "fanout", "-n", "12", "-s", "3", "-r", "150", "-d", "1", "--warmup", "0.2", "--ws",
    ]);
    assert!(ok, "chat-bench fanout --ws failed:\n{out}");
    assert_eq!(field(&out, "ws_clients"), "12", "{out}");
    assert_eq!(field(&out, "logged_in"), "12", "{out}");
    assert_eq!(field(&out, "joins"), "78", "{out}");
    assert_eq!(field(&out, "lines"), "180", "{out}");
    assert_eq!(field(&out, "received"), "2160", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "reordered"), "0", "{out}");
    assert_eq!(field(&out, "dropped"), "0", "{out}");
}

/// Half the clients over WebSocket, half over TCP, senders of both kinds,
/// and every client checks the order: all got every line in one order.
#[test]
fn mixed_room_sees_one_order() {
    let (ok, out) = bench(&[
        "fanout",
        "-n",
        "20",
        "-s",
        "4",
        "-r",
        "200",
        "-d",
        "1",
        "--warmup",
        "0.2",
        "--ws-share",
        "0.5",
        "--check-order",
    ]);
    assert!(ok, "chat-bench fanout --ws-share failed:\n{out}");
    assert_eq!(field(&out, "ws_clients"), "10", "{out}");
    assert_eq!(field(&out, "lost"), "0", "{out}");
    assert_eq!(field(&out, "complete"), "20", "{out}");
    assert_eq!(field(&out, "orders"), "1", "{out}");
    assert_eq!(field(&out, "same_order"), "true", "{out}");
}

/// `connect` and `burst` over WebSocket log everyone in and lose nothing.
#[test]
fn connect_and_burst_over_websocket() {
    let (ok, out) = bench(&[
        "connect", "-n", "60", "--lines", "2", "--settle", "0.2", "--ws",
    ]);
    assert!(ok, "chat-bench connect --ws failed:\n{out}");
    assert_eq!(field(&out, "ws_clients"), "60", "{out}");
    assert_eq!(field(&out, "joins"), "1830", "{out}");
    assert_eq!(field(&out, "line_lost"), "0", "{out}");
    let (ok, out) = bench(&[
        "burst",
        "-n",
        "20",
        "-s",
        "3",
        "-l",
        "40",
        "-b",
        "4000",
        "-r",
        "1",
        "--pause",
        "0.2",
        "--ws-share",
        "0.5",
        "--server-arg=--max-pending=1048576",
    ]);
    assert!(ok, "chat-bench burst --ws-share failed:\n{out}");
    assert_eq!(field(&out, "received"), "2760", "{out}");
    assert_eq!(field(&out, "same_order"), "true", "{out}");
}
