//! `scripts/load.sh` with real `chat-client` processes: a small run must
//! report everyone joined, sent, received and exited cleanly; a run whose
//! lines the server refuses must fail. Correctness only, never speed.
mod common;

use std::process::{Command, Output};

use common::Server;

fn load(args: &[&str]) -> (Output, String) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/load.sh"))
        .args(args)
        .env("CHAT_CLIENT", env!("CARGO_BIN_EXE_chat-client"))
        .env("CHAT_SERVER", env!("CARGO_BIN_EXE_chat-server"))
        // A failed run keeps its logs: under target/, not in /tmp.
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run scripts/load.sh");
    let text = format!(
        "{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn a_small_load_run_joins_delivers_everything_and_leaves() {
    let (out, text) = load(&["-n", "6", "-d", "2"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("load: joined   6 of 6"), "{text}");
    assert!(text.contains("load: sent     6 of 6"), "{text}");
    assert!(
        text.contains("load: received 6 of 6 (all 24 lines"),
        "{text}"
    );
    assert!(text.contains("load: exited 0 6 of 6"), "{text}");
}

#[test]
fn a_load_run_fails_when_the_server_refuses_the_lines() {
    // 0.2 lines/s with a burst of 0.4: every chat line is refused.
    let server = Server::start(&["--rate", "0.2"]);
    let port = server.addr.port().to_string();
    let (out, text) = load(&["-n", "3", "-d", "1", "127.0.0.1", &port]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("load: joined   3 of 3"), "{text}");
    assert!(text.contains("load: sent     0 of 3"), "{text}");
    assert!(text.contains("FAILED"), "{text}");
}
