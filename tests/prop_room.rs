//! Property tests of the room's rules (PROTOCOL.md sections 2 to 5): any
//! sequence of lines and events from any connections.
use std::collections::HashSet;
use std::time::{Duration, Instant};

use chatroom::room::{ConnId, Gone, Recorder, Room, RoomConfig};
use chatroom::text::{check_name, fold};
use proptest::prelude::*;

const CONNS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Connect(ConnId),
    Line(ConnId, Vec<u8>),
    TooLong(ConnId),
    TimedOut(ConnId),
    Close(ConnId, Gone),
    Wait(u64),
    Shutdown,
}

const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "BOB",
    "zoë",
    "ZOË",
    "日本",
    "x",
    "a b",
    "server",
    "Admin",
    "[SERVER]",
    "al:ice",
    "*star",
    "b\0b",
    "k\u{212a}",
    "Kk",
    "\u{1b}[31mred",
    "-.-",
    "",
    "straße",
    "STRASSE",
];

const TEXTS: &[&str] = &[
    "hi",
    "[SERVER]: fake notice",
    "[SERVER]",
    "\u{1b}[2Jboom\u{7}",
    "\ttab\t",
    "a\rb",
    "\u{85}next\u{9f}",
    "* alice waves",
    "[PM from bob]: x",
    "/pong",
    "",
    "   ",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(TEXTS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9_.-]{1,3}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

/// A line a client could send (the framer never passes an LF on).
fn line() -> impl Strategy<Value = Vec<u8>> {
    let cmd = prop::sample::select(
        &[
            "/who", "/help", "/ping", "/ping ", "/quit", "/quit ", "!quit", "{EXIT}", "/nick ",
            "/msg ", "/me ", "//", "/frob ", "/NICK ", "/Msg ", "/ME", "",
        ][..],
    );
    let text_line = (cmd, name(), text()).prop_map(|(c, n, t)| {
        let s = match c {
            "/nick " | "/NICK " => format!("{c}{n}"),
            "/msg " | "/Msg " => format!("{c}{n} {t}"),
            "" => t,
            _ => format!("{c}{t}"),
        };
        s.into_bytes()
    });
    let bytes = prop::collection::vec(any::<u8>(), 0..40)
        .prop_map(|b| b.into_iter().filter(|&c| c != b'\n').collect::<Vec<u8>>());
    prop_oneof![
        3 => name().prop_map(String::into_bytes),
        6 => text_line,
        1 => bytes,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..CONNS;
    prop_oneof![
        4 => id.clone().prop_map(Op::Connect),
        12 => (id.clone(), line()).prop_map(|(i, l)| Op::Line(i, l)),
        1 => id.clone().prop_map(Op::TooLong),
        1 => id.clone().prop_map(Op::TimedOut),
        2 => (id, prop::sample::select(&[Gone::Disconnected, Gone::TooSlow, Gone::Shutdown][..]))
            .prop_map(|(i, g)| Op::Close(i, g)),
        2 => (0u64..3000).prop_map(Op::Wait),
        1 => Just(Op::Shutdown),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Free,
    Open,
    /// Hung up: the server reads nothing more from it and closes it soon.
    Closing,
}

/// Checks one output line against section 2.
fn check_line(line: &str) -> Result<(), String> {
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("control character in {line:?}"));
    }
    if line.starts_with("[SERVER]") {
        let body = line
            .strip_prefix("[SERVER]: ")
            .ok_or_else(|| format!("malformed notice {line:?}"))?;
        // Notices may quote user text, but never begin with it.
        for forged in ["[SERVER]", "fake", "* ", "[PM", "\u{1b}"] {
            if body.starts_with(forged) {
                return Err(format!("notice starts with user text: {line:?}"));
            }
        }
        return Ok(());
    }
    if line == "/pong" || line.starts_with("/pong ") {
        return Ok(());
    }
    let name = if let Some(rest) = line.strip_prefix("* ") {
        rest.split(' ').next().unwrap()
    } else if let Some(rest) = line
        .strip_prefix("[PM from ")
        .or_else(|| line.strip_prefix("[PM to "))
    {
        rest.split("]: ")
            .next()
            .filter(|_| rest.contains("]: "))
            .ok_or_else(|| format!("malformed PM {line:?}"))?
    } else {
        line.split(": ")
            .next()
            .filter(|_| line.contains(": "))
            .ok_or_else(|| format!("not a server line: {line:?}"))?
    };
    check_name(name).map_err(|e| format!("bad name {name:?} in {line:?}: {e:?}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn any_input_keeps_the_rules(
        ops in prop::collection::vec(op(), 1..80),
        rate in prop::sample::select(&[0.0, 1.0, 20.0][..]),
        announce_limit in prop::sample::select(&[0usize, 2, 1000][..]),
    ) {
        let mut room = Room::new(RoomConfig { rate, announce_limit, ..RoomConfig::default() });
        let mut out = Recorder::default();
        let mut now = Instant::now();
        let mut conns = [Conn::Free; CONNS];
        let mut shut_down = false;
        for op in ops {
            let before = room.member_count();
            match op.clone() {
                Op::Connect(i) if conns[i] == Conn::Free && !shut_down => {
                    room.connect(i, &mut out);
                    conns[i] = Conn::Open;
                }
                Op::Line(i, l) if conns[i] == Conn::Open => room.line(i, &l, now, &mut out),
                Op::TooLong(i) if conns[i] == Conn::Open => room.line_too_long(i, &mut out),
                Op::TimedOut(i) if conns[i] == Conn::Open => room.timed_out(i, &mut out),
                Op::Close(i, why) if conns[i] != Conn::Free => {
                    room.disconnect(i, why, &mut out);
                    conns[i] = Conn::Free;
                    prop_assert!(!room.has_session(i));
                }
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Shutdown if !shut_down => {
                    room.shutdown(&mut out);
                    shut_down = true;
                }
                _ => {}
            }
            // Section 7: above the limit, a join reaches only the newcomer
            // and a leave reaches nobody.
            let quiet = announce_limit != 0 && room.member_count().max(before) > announce_limit;
            if quiet {
                let joins = out.lines.iter().filter(|(_, l)| l.ends_with(" joined the chat!")).count();
                prop_assert!(joins <= 1, "a join told to {} users above the limit", joins);
                let leaves = out.lines.iter().filter(|(_, l)| {
                    l.starts_with("[SERVER]: ")
                        && (l.contains(" left the chat.") || l.contains(" has disconnected"))
                }).count();
                prop_assert!(leaves == 0 || matches!(op, Op::Shutdown), "a leave told above the limit");
            }
            for (to, l) in out.lines.drain(..) {
                prop_assert!(conns[to] != Conn::Free, "line to a closed connection: {l:?}");
                // Before shutdown nothing follows a hang-up (the server's
                // writer drops late lines at shutdown anyway).
                prop_assert!(shut_down || conns[to] == Conn::Open, "line after hang-up: {l:?}");
                if let Err(e) = check_line(&l) {
                    prop_assert!(false, "{}", e);
                }
            }
            for id in out.hung_up.drain(..) {
                prop_assert!(conns[id] != Conn::Free);
                conns[id] = Conn::Closing;
            }
            // Names in the room: valid and unique without regard to case.
            let mut seen = HashSet::new();
            let mut members = 0;
            for (id, conn) in conns.iter().enumerate() {
                if let Some(n) = room.name(id) {
                    members += 1;
                    prop_assert!(check_name(n).is_ok(), "bad name {n:?} in the room");
                    prop_assert!(seen.insert(fold(n)), "two users named {n:?}");
                    prop_assert!(*conn != Conn::Free);
                }
            }
            prop_assert_eq!(members, room.member_count());
        }
    }
}
