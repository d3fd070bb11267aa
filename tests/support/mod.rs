//! Helpers shared by the protocol tests (on top of `tests/common`).
//!
//! Use with `mod common; mod support;` in a test file.
#![allow(dead_code)]

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::common::{Client, Server};

/// Starts a server with the given flags and logs in `names`, in order; each
/// client has read every join notice up to the last one, so all start level.
pub fn room(args: &[&str], names: &[&str]) -> (Server, Vec<Client>) {
    let server = Server::start(args);
    let mut clients: Vec<Client> = Vec::new();
    for name in names {
        let c = server.login(name);
        for earlier in clients.iter_mut() {
            earlier.expect(&format!("[SERVER]: {name} joined the chat!"));
        }
        clients.push(c);
    }
    (server, clients)
}

/// Shows that nothing reached `watchers` before this point: `sender` (named
/// `sender_name`) sends a marker chat line and it must be the very next line
/// every watcher reads (the sender included, which also reads it).
pub fn nothing_before_marker(sender: &mut Client, sender_name: &str, watchers: &mut [&mut Client]) {
    let marker = format!("marker-{}", next_id());
    sender.send(&marker);
    let want = format!("{sender_name}: {marker}");
    for w in watchers.iter_mut() {
        w.expect(&want);
    }
    sender.expect(&want);
}

/// Shows that `client` got nothing more: a `/ping` barrier returns no line.
pub fn nothing_more(client: &mut Client) {
    let token = format!("quiet{}", next_id());
    let got = client.sync(&token);
    assert!(got.is_empty(), "unexpected lines: {got:?}");
}

/// A unique number for markers and ping tokens.
pub fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Writes `bytes` one byte per `write` (Nagle off, a short pause between
/// bytes), so the server gets them in many reads.
pub fn send_bytewise(client: &mut Client, bytes: &[u8]) {
    client.stream.set_nodelay(true).unwrap();
    for b in bytes {
        client.stream.write_all(&[*b]).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Closes `client` with a reset: SO_LINGER on with a zero timeout, then close.
pub fn reset(client: Client) {
    let fd = client.stream.as_raw_fd();
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this client owns, with a valid option value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(client);
}

/// True if `line` has one of the forms of PROTOCOL.md section 2.
pub fn is_server_line(line: &str) -> bool {
    fn name_ok(n: &str) -> bool {
        let len = n.chars().count();
        (2..=32).contains(&len)
            && n.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    }
    if line.starts_with("[SERVER]: ") || line == "/pong" || line.starts_with("/pong ") {
        return true;
    }
    for pm in ["[PM from ", "[PM to "] {
        if let Some(rest) = line.strip_prefix(pm) {
            return rest.split_once("]: ").is_some_and(|(n, _)| name_ok(n));
        }
    }
    if let Some(rest) = line.strip_prefix("* ") {
        return rest.split_once(' ').is_some_and(|(n, _)| name_ok(n));
    }
    line.split_once(": ").is_some_and(|(n, _)| name_ok(n))
}
