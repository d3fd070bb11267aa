//! PROTOCOL.md section 5 (version 2): who holds a place under
//! `--max-clients` and `--max-per-ip`.
mod common;
mod support;

use common::Server;
use support::room;

const FULL: &str = "[SERVER]: The server is full; please try again later.";
const PER_IP: &str = "[SERVER]: Too many connections from your address; please try again later.";

/// Left means gone: carol's `/quit` frees her place at once, while the
/// server still waits for her client to close its end.
#[test]
fn a_quitter_frees_its_place_before_its_socket_closes() {
    let (server, mut c) = room(&["--max-clients", "3"], &["alice", "bob", "carol"]);
    // carol quits but her client neither reads on nor closes.
    c[2].send("/quit");
    c[0].expect("[SERVER]: carol left the chat.");
    let mut erin = server.connect();
    let first = erin.line();
    assert_ne!(first, FULL, "erin was refused although carol had left");
    erin.send("erin");
    erin.read_until("[SERVER]: erin joined the chat!");
    c[0].expect("[SERVER]: erin joined the chat!");
    // Now the server is full again.
    let mut frank = server.connect();
    assert_eq!(frank.expect_eof(), vec![FULL]);
}

/// The same for a connection whose login timed out and for a user dropped
/// by the idle timeout: once told why, it holds no place, though its socket
/// is still open.
#[test]
fn timeouts_free_places_at_once() {
    for (flags, notice) in [
        (["--login-timeout", "0.3"], "[SERVER]: No name chosen"),
        (["--idle-timeout", "0.3"], "[SERVER]: Nothing received"),
    ] {
        let server = Server::start(&[&["--max-clients", "1"][..], &flags[..]].concat());
        let mut first = server.connect();
        first.expect_prefix("[SERVER]: Welcome");
        if flags[0] == "--idle-timeout" {
            first.send("idler");
            first.read_until("[SERVER]: idler joined the chat!");
        }
        first.expect_prefix(notice);
        // `first` keeps its end open and reads no more.
        let mut next = server.connect();
        assert_ne!(next.line(), FULL, "{flags:?}: the place was not freed");
        drop(first);
    }
}

/// `--max-per-ip 2 --per-ip-exempt ''`: the third connection from
/// 127.0.0.1 gets the notice and EOF; a place frees when one leaves.
#[test]
fn per_ip_cap_refuses_the_third_and_frees_on_leave() {
    let server = Server::start(&["--max-per-ip", "2", "--per-ip-exempt", ""]);
    let mut alice = server.login("alice");
    let mut pending = server.connect();
    pending.expect_prefix("[SERVER]: ");
    let mut third = server.connect();
    assert_eq!(third.expect_eof(), vec![PER_IP]);
    support::wait_log(
        &server,
        "too many connections from its address",
        common::WAIT,
    );
    // One leaves (quietly, before login): there is room for one again.
    pending.send("/quit");
    assert!(pending.expect_eof().is_empty());
    let mut bob = server.login("bob");
    alice.expect("[SERVER]: bob joined the chat!");
    let mut fourth = server.connect();
    assert_eq!(fourth.expect_eof(), vec![PER_IP]);
    bob.send("hi");
    alice.expect("bob: hi");
}

/// The full notice still wins over the per-address one when both apply,
/// and `--max-per-ip 0` turns the cap off.
#[test]
fn per_ip_zero_is_no_limit_and_full_still_applies() {
    let server = Server::start(&[
        "--max-per-ip",
        "0",
        "--per-ip-exempt",
        "",
        "--max-clients",
        "30",
    ]);
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut c = server.connect();
        c.expect_prefix("[SERVER]: ");
        held.push(c);
    }
    let mut extra = server.connect();
    assert_eq!(extra.expect_eof(), vec![FULL]);
}

/// Default flags: loopback is exempt, so 100 connections from 127.0.0.1
/// (a local proxy, a load test) are all admitted.
#[test]
fn default_flags_admit_a_hundred_loopback_connections() {
    let server = Server::start(&[]);
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut c = server.connect();
        c.expect_prefix("[SERVER]: Welcome");
        held.push(c);
    }
    let mut last = server.login("last");
    last.send("/who");
    last.expect("[SERVER]: 1 user online: last");
}

/// A user whose client sent EOF (half-closed, still able to read) has left:
/// once the others were told, its place is free while its last bytes drain.
#[test]
fn an_eof_frees_its_place_before_its_socket_closes() {
    let (server, mut c) = room(&["--max-clients", "3"], &["alice", "bob", "carol"]);
    c[2].shutdown_write();
    c[0].expect("[SERVER]: carol has disconnected.");
    let mut erin = server.connect();
    assert_ne!(
        erin.line(),
        FULL,
        "erin was refused although carol had left"
    );
    erin.send("erin");
    erin.read_until("[SERVER]: erin joined the chat!");
    c[0].expect("[SERVER]: erin joined the chat!");
}

/// `--per-ip-exempt` is a list of addresses and CIDR prefixes: 127.0.0.1
/// listed (beside a prefix it is not in) is not capped; listed only under
/// prefixes it is not in, it is.
#[test]
fn per_ip_exempt_takes_addresses_and_prefixes() {
    for (exempt, capped) in [
        ("10.0.0.0/8,127.0.0.1", false),
        ("127.0.0.0/8", false),
        ("192.168.0.0/16,::1", true),
    ] {
        let server = Server::start(&["--max-per-ip", "1", "--per-ip-exempt", exempt]);
        let mut first = server.connect();
        first.expect_prefix("[SERVER]: Welcome");
        let mut second = server.connect();
        if capped {
            assert_eq!(second.expect_eof(), vec![PER_IP], "{exempt}");
        } else {
            second.expect_prefix("[SERVER]: Welcome");
        }
    }
}

/// The default `--max-per-ip` is 20: without exemptions the 21st
/// connection from 127.0.0.1 is refused with the per-address notice.
#[test]
fn default_per_ip_cap_is_20() {
    let server = Server::start(&["--per-ip-exempt", ""]);
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = server.connect();
        c.expect_prefix("[SERVER]: Welcome");
        held.push(c);
    }
    let mut extra = server.connect();
    assert_eq!(extra.expect_eof(), vec![PER_IP]);
}
