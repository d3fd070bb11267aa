//! PROTOCOL.md section 8 through real sockets: the history block a newcomer
//! gets, ids on public lines, `/ids`, `/since`, `/history`, and the
//! `--history` and `--join-history` flags. (The database, `--history-db`,
//! is in `tests/history_db.rs`.)
mod common;
mod support;

use common::{Client, Server};
use support::nothing_more;

const HISTORY_END: &str = "[SERVER]: End of history.";

/// Splits `@ID rest` into the id and the rest; `None` for a line without
/// an id (only `@`, digits, a space make one).
fn split_id(line: &str) -> (Option<u64>, &str) {
    if let Some(rest) = line.strip_prefix('@') {
        if let Some((digits, text)) = rest.split_once(' ') {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return (digits.parse().ok(), text);
            }
        }
    }
    (None, line)
}

/// The id of a line that must have one.
fn id_of(line: &str) -> u64 {
    split_id(line)
        .0
        .unwrap_or_else(|| panic!("no id on {line:?}"))
}

/// The `[SERVER]: History (K lines):` head for `k` lines.
fn head(k: usize) -> String {
    let s = if k == 1 { "" } else { "s" };
    format!("[SERVER]: History ({k} line{s}):")
}

/// What a newcomer got between its welcome and its own join notice.
struct Arrival {
    client: Client,
    /// Every line after the welcome, before the join notice.
    before_join: Vec<String>,
    /// The join notice as it came (with `@ID ` when ids are on and the join
    /// was announced).
    join: String,
}

impl Arrival {
    /// The lines of the history block (without its framing); panics when the
    /// block is malformed; empty when there is none.
    fn block(&self) -> Vec<String> {
        let Some(start) = self
            .before_join
            .iter()
            .position(|l| l.starts_with("[SERVER]: History ("))
        else {
            return Vec::new();
        };
        let rest = &self.before_join[start + 1..];
        assert_eq!(
            rest.last().map(String::as_str),
            Some(HISTORY_END),
            "the block ends right before the join notice: {:?}",
            self.before_join
        );
        let lines = rest[..rest.len() - 1].to_vec();
        assert_eq!(self.before_join[start], head(lines.len()), "{lines:?}");
        lines
    }

    /// The notices between the welcome and the block (or the join notice).
    fn notices(&self) -> Vec<String> {
        self.before_join
            .iter()
            .take_while(|l| !l.starts_with("[SERVER]: History ("))
            .cloned()
            .collect()
    }
}

/// Connects, sends `pre` (commands before the name), then `name`; reads the
/// greeting, one answer per command, the welcome, and everything up to the
/// join notice.
fn arrive(server: &Server, pre: &[&str], name: &str) -> Arrival {
    let mut client = server.connect();
    client.expect_prefix("[SERVER]: ");
    for p in pre {
        client.send(p);
        client.expect_prefix("[SERVER]: ");
    }
    client.send(name);
    let welcome = client.expect_prefix("[SERVER]: Welcome to the chat, ");
    assert!(welcome.contains(name), "{welcome}");
    let join = format!("[SERVER]: {name} joined the chat!");
    let mut before_join = Vec::new();
    loop {
        let l = client.line();
        if split_id(&l).1 == join {
            return Arrival {
                client,
                before_join,
                join: l,
            };
        }
        before_join.push(l);
    }
}

/// A user who asked for ids before the name.
fn arrive_with_ids(server: &Server, name: &str) -> Arrival {
    arrive(server, &["/ids on"], name)
}

/// Sends `n` chat lines from `c` (named `name`) and reads them back; returns
/// them as they came.
fn say(c: &mut Client, name: &str, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            let text = format!("{tag} {i}");
            c.send(&text);
            let got = c.line();
            assert_eq!(split_id(&got).1, format!("{name}: {text}"));
            got
        })
        .collect()
}

#[test]
fn the_block_is_framed_and_absent_in_a_room_without_history() {
    let server = Server::start(&[]);
    // The very first user: the room has no public line yet, so nothing at
    // all comes between the welcome and the join notice.
    let alice = arrive(&server, &[], "alice");
    assert!(alice.before_join.is_empty(), "{:?}", alice.before_join);
    let mut a = alice.client;
    // One public line so far (alice's join): "1 line", singular.
    let bob = arrive(&server, &[], "bob");
    assert_eq!(
        bob.before_join,
        [
            head(1),
            "[SERVER]: alice joined the chat!".to_owned(),
            HISTORY_END.to_owned()
        ]
    );
    a.expect("[SERVER]: bob joined the chat!");
    say(&mut a, "alice", 3, "hello");
    let carol = arrive(&server, &[], "carol");
    assert_eq!(
        carol.block(),
        [
            "[SERVER]: alice joined the chat!",
            "[SERVER]: bob joined the chat!",
            "alice: hello 0",
            "alice: hello 1",
            "alice: hello 2"
        ]
    );
    // No ids asked for: none on the block's lines, none on the join notice.
    assert_eq!(carol.join, "[SERVER]: carol joined the chat!");
}

#[test]
fn a_newcomer_gets_the_last_join_history_lines() {
    let server = Server::start(&["--join-history", "4"]);
    let mut a = server.login("alice");
    say(&mut a, "alice", 10, "line");
    let bob = arrive(&server, &[], "bob");
    assert_eq!(
        bob.block(),
        [
            "alice: line 6",
            "alice: line 7",
            "alice: line 8",
            "alice: line 9"
        ]
    );
    // --join-history above --history is cut to --history.
    let server = Server::start(&["--history", "3", "--join-history", "50"]);
    let mut a = server.login("alice");
    say(&mut a, "alice", 5, "x");
    let bob = arrive(&server, &[], "bob");
    assert_eq!(bob.block(), ["alice: x 2", "alice: x 3", "alice: x 4"]);
}

/// Every public line has the next id, and every receiver sees the same id
/// for it: senders, receivers with ids on and off, a receiver who turns
/// ids on later, and a newcomer whose history block repeats them.
#[test]
fn ids_count_up_by_one_and_are_the_same_for_every_receiver() {
    let server = Server::start(&["--rate", "0"]);
    let mut on1 = arrive_with_ids(&server, "on1");
    assert_eq!(id_of(&on1.join), 1);
    let off1 = arrive(&server, &[], "off1");
    assert_eq!(off1.join, "[SERVER]: off1 joined the chat!");
    assert_eq!(on1.client.line(), "@2 [SERVER]: off1 joined the chat!");
    let on2 = arrive_with_ids(&server, "on2");
    assert_eq!(id_of(&on2.join), 3);
    let off2 = arrive(&server, &[], "off2");
    let mut clients = [on1.client, off1.client, on2.client, off2.client];
    let names = ["on1", "off1", "on2", "off2"];
    // Everyone reads up to the last join.
    for c in clients.iter_mut().take(3) {
        c.read_until_match(|l| split_id(l).1 == "[SERVER]: off2 joined the chat!");
    }
    // Lines of every public kind, from every user, in several turns.
    let mut sent = Vec::new();
    for round in 0..5 {
        for (i, name) in names.iter().enumerate() {
            let line = match (round + i) % 3 {
                0 => {
                    clients[i].send(&format!("r{round}"));
                    format!("{name}: r{round}")
                }
                1 => {
                    clients[i].send(&format!("/me waves {round}"));
                    format!("* {name} waves {round}")
                }
                _ => {
                    clients[i].send(&format!("two lines {round}\nthree {round}"));
                    sent.push(format!("{name}: two lines {round}"));
                    format!("{name}: three {round}")
                }
            };
            sent.push(line);
        }
        if round == 2 {
            // off2 turns ids on half-way: from its next line on.
            clients[3].send("/ids on");
        }
    }
    let mut seen: Vec<Vec<(Option<u64>, String)>> = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let got: Vec<(Option<u64>, String)> = (0..sent.len() + usize::from(i == 3))
            .map(|_| {
                let l = c.line();
                let (id, text) = split_id(&l);
                (id, text.to_owned())
            })
            .filter(|(_, t)| !t.starts_with("[SERVER]: Ids on"))
            .collect();
        let texts: Vec<&String> = got.iter().map(|(_, t)| t).collect();
        // Nobody's lines arrive in another order than everyone else's...
        assert_eq!(texts.len(), sent.len(), "{}", names[i]);
        seen.push(got);
    }
    // ... and the order is the same for all (each user's own lines in the
    // order sent).
    for s in &seen[1..] {
        let a: Vec<&String> = seen[0].iter().map(|(_, t)| t).collect();
        let b: Vec<&String> = s.iter().map(|(_, t)| t).collect();
        assert_eq!(a, b);
    }
    let ids: Vec<u64> = seen[0].iter().map(|(id, _)| id.unwrap()).collect();
    let first = ids[0];
    assert_eq!(first, 5, "after the four joins");
    assert_eq!(ids, (first..first + ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(seen[2], seen[0], "on2 sees the ids on1 sees");
    assert!(
        seen[1].iter().all(|(id, _)| id.is_none()),
        "off1 has ids off"
    );
    // off2: no ids until its /ids on, the same ids as the others after.
    let turned = seen[3].iter().position(|(id, _)| id.is_some()).unwrap();
    assert!(turned > 0 && seen[3][..turned].iter().all(|(id, _)| id.is_none()));
    assert_eq!(seen[3][turned..], seen[0][turned..]);
    // A newcomer's block repeats the last lines with the same ids.
    let late = arrive(&server, &["/ids on"], "late");
    let block: Vec<(Option<u64>, String)> = late
        .block()
        .iter()
        .map(|l| {
            let (id, t) = split_id(l);
            (id, t.to_owned())
        })
        .collect();
    assert_eq!(block.len(), 20);
    assert_eq!(block[..], seen[0][seen[0].len() - 20..]);
    assert_eq!(id_of(&late.join), ids.last().unwrap() + 1);
}

/// Private messages, notices to one user, pongs and quiet joins (section 7)
/// take no id and are never kept: the ids of the public lines around them
/// have no gap, and neither `/history` nor a newcomer's block shows them.
#[test]
fn private_lines_take_no_id_and_are_never_kept() {
    let server = Server::start(&["--announce-limit", "2", "--rate", "0"]);
    let mut a = arrive_with_ids(&server, "alice").client;
    let b = arrive_with_ids(&server, "bob");
    let mut b = b.client;
    a.expect("@2 [SERVER]: bob joined the chat!");
    a.send("one");
    a.expect("@3 alice: one");
    b.expect("@3 alice: one");
    // Each of these is for one user only.
    a.send("/msg bob psst");
    a.expect("[PM to bob]: psst");
    b.expect("[PM from alice]: psst");
    a.send("/ping tok");
    a.expect("/pong tok");
    a.send("/who");
    a.expect("[SERVER]: 2 users online: alice, bob");
    a.send("/help");
    a.expect_prefix("[SERVER]: Commands:");
    a.send("/nope");
    a.expect_prefix("[SERVER]: Unknown command");
    a.send("/msg nobody x");
    a.expect_prefix("[SERVER]: No user named nobody");
    a.send("/nick bob");
    a.expect_prefix("[SERVER]: Sorry,");
    // A third user in a room announced up to 2: a quiet join, with no id
    // even though it asked for ids; nobody else hears of it.
    let carol = arrive_with_ids(&server, "carol");
    assert_eq!(carol.join, "[SERVER]: carol joined the chat!");
    let mut c = carol.client;
    // Its quiet leave is not public either (once the room counts 2 again,
    // the server has handled it).
    drop(c);
    loop {
        a.send("/who");
        if a.line().starts_with("[SERVER]: 2 users online") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    a.send("two");
    a.expect("@4 alice: two");
    b.expect("@4 alice: two");
    // A nick notice is public (section 7: always to everyone).
    b.send("/nick bobby");
    a.expect("@5 [SERVER]: bob is now known as bobby.");
    b.expect("@5 [SERVER]: bob is now known as bobby.");
    a.send("/history");
    assert_eq!(a.line(), head(5));
    let kept: Vec<String> = (0..5).map(|_| a.line()).collect();
    a.expect(HISTORY_END);
    assert_eq!(
        kept,
        [
            "@1 [SERVER]: alice joined the chat!",
            "@2 [SERVER]: bob joined the chat!",
            "@3 alice: one",
            "@4 alice: two",
            "@5 [SERVER]: bob is now known as bobby."
        ]
    );
    // A newcomer sees the same five, nothing private.
    let dave = arrive(&server, &[], "dave");
    assert_eq!(
        dave.block(),
        kept.iter().map(|l| split_id(l).1).collect::<Vec<_>>()
    );
    c = dave.client;
    nothing_more(&mut c);
}

/// `/since ID` inside the kept history: exactly the lines after ID, with
/// their ids, then the join notice; no "lost" notice.
#[test]
fn since_inside_the_history_replays_exactly_the_lines_after_it() {
    let server = Server::start(&["--history", "10", "--rate", "0"]);
    let mut a = arrive_with_ids(&server, "alice").client;
    let lines = say(&mut a, "alice", 8, "m");
    // Ids 1 (the join) to 9.
    assert_eq!(id_of(&lines[7]), 9);
    let since = id_of(&lines[4]); // 6
    let bob = arrive(&server, &["/ids on", &format!("/since {since}")], "bob");
    assert_eq!(bob.notices(), Vec::<String>::new(), "nothing was lost");
    assert_eq!(bob.block(), lines[5..]);
    assert_eq!(id_of(&bob.join), 10);
    // Without ids the same lines come, plain.
    let carol = arrive(&server, &[&format!("/since {since}")], "carol");
    let plain: Vec<&str> = lines[5..].iter().map(|l| split_id(l).1).collect();
    assert_eq!(
        carol.block()[..3],
        plain[..],
        "the lines after {since}, then bob's join"
    );
    assert_eq!(carol.block()[3], "[SERVER]: bob joined the chat!");
    // /since the very last id: nothing to replay, no block at all.
    a.read_until_match(|l| split_id(l).1 == "[SERVER]: carol joined the chat!");
    let last = 11;
    let dave = arrive(&server, &["/ids on", &format!("/since {last}")], "dave");
    assert!(dave.before_join.is_empty(), "{:?}", dave.before_join);
    assert_eq!(id_of(&dave.join), last + 1);
    // /since 0 once the room has 12 lines and keeps 10: 2 are lost.
    let erin = arrive(&server, &["/ids on", "/since 0"], "erin");
    assert_eq!(
        erin.notices(),
        ["[SERVER]: 2 lines after 0 are no longer kept (this room keeps its last 10)."]
    );
    let ids: Vec<u64> = erin.block().iter().map(|l| id_of(l)).collect();
    assert_eq!(ids, (3..=12).collect::<Vec<_>>(), "the last 10 of 12");
}

/// `/since ID` further back than the kept history: a notice says how many
/// of the lines after ID are no longer kept, then the kept ones follow.
#[test]
fn since_beyond_the_history_says_how_many_lines_are_lost() {
    // Each case on a fresh room: alice's join and 11 lines are ids 1 to
    // 12, and the room keeps 8 to 12.
    for (since, lost) in [(0u64, 7u64), (2, 5), (6, 1), (7, 0)] {
        let server = Server::start(&["--history", "5", "--rate", "0"]);
        let mut a = arrive_with_ids(&server, "alice").client;
        let lines = say(&mut a, "alice", 11, "m");
        let u = arrive(&server, &["/ids on", &format!("/since {since}")], "bob");
        let notices = u.notices();
        if lost == 0 {
            assert!(notices.is_empty(), "{notices:?}");
        } else {
            assert_eq!(notices.len(), 1, "{notices:?}");
            let (s, are) = if lost == 1 { ("", "is") } else { ("s", "are") };
            let want = format!("[SERVER]: {lost} line{s} after {since} {are} no longer kept");
            assert!(notices[0].starts_with(&want), "{notices:?}");
        }
        assert_eq!(
            u.block(),
            lines[6..],
            "/since {since}: the kept lines follow"
        );
        // Replayed + lost = every line after `since`.
        let replayed = u.block().len() as u64;
        assert_eq!(lost + replayed, 12 - since);
    }
}

/// `/since` with an id the room never had (beyond its last): the server
/// says its ids started over (it was restarted without `--history-db`) and
/// sends the recent lines instead, as a newcomer gets them.
#[test]
fn since_beyond_the_last_id_says_the_ids_started_over() {
    let server = Server::start(&["--join-history", "3"]);
    let mut a = arrive_with_ids(&server, "alice").client;
    let lines = say(&mut a, "alice", 5, "m");
    // Ids 1 to 6.
    let u = arrive(&server, &["/ids on", "/since 999"], "bob");
    let notices = u.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let n = &notices[0];
    assert!(n.starts_with("[SERVER]: "), "{n}");
    assert!(
        n.contains("999") && n.contains(" 6 ") && n.contains("started over"),
        "names the id asked for, the last id, and why: {n}"
    );
    assert_eq!(u.block(), lines[2..], "the last --join-history lines");
    assert_eq!(id_of(&u.join), 7);
}

/// `/since` is for the login only; after it, a notice points at `/history`
/// and nothing else happens. A `/since` without a number is refused.
#[test]
fn since_after_login_and_since_junk_only_get_a_notice() {
    let server = Server::start(&[]);
    let mut a = arrive_with_ids(&server, "alice").client;
    let lines = say(&mut a, "alice", 2, "m");
    a.send("/since 1");
    let n = a.expect_prefix("[SERVER]: ");
    assert!(n.contains("/since") && n.contains("/history"), "{n}");
    nothing_more(&mut a);
    for junk in ["/since", "/since x", "/since -1", "/since 1.5"] {
        let mut c = server.connect();
        c.expect_prefix("[SERVER]: ");
        c.send(junk);
        let n = c.expect_prefix("[SERVER]: Usage: /since");
        assert!(!n.contains('@'), "{n}");
    }
    // A refused /since leaves the login as it was: the recent lines come.
    let bob = arrive(&server, &["/since nope"], "bob");
    let mut want = vec!["[SERVER]: alice joined the chat!"];
    want.extend(lines.iter().map(|l| split_id(l).1));
    assert_eq!(bob.block(), want);
    // The last /since before the name counts.
    let carol = arrive(&server, &["/since 0", "/since 3"], "carol");
    assert_eq!(carol.block(), ["[SERVER]: bob joined the chat!"]);
}

/// `/ids on|off` before and after login; only public lines get an id; a
/// bad argument gets a usage notice and changes nothing.
#[test]
fn ids_switch_on_and_off_before_and_after_login() {
    let server = Server::start(&[]);
    let mut a = server.login("alice");
    say(&mut a, "alice", 1, "hi");
    // Before login: on, then off again, then on.
    let mut b = server.connect();
    b.expect_prefix("[SERVER]: ");
    b.send("/ids on");
    let on = b.expect_prefix("[SERVER]: ");
    assert!(!on.starts_with("[SERVER]: Usage"), "{on}");
    b.send("/ids off");
    b.expect_prefix("[SERVER]: ");
    b.send("/ids");
    b.expect_prefix("[SERVER]: Usage: /ids on|off");
    b.send("/IDS ON");
    b.expect_prefix("[SERVER]: ");
    b.send("bob");
    // Welcome: a notice to one user, no id.
    b.expect_prefix("[SERVER]: Welcome to the chat, bob!");
    b.expect(&head(2));
    b.expect("@1 [SERVER]: alice joined the chat!");
    b.expect("@2 alice: hi 0");
    b.expect(HISTORY_END);
    b.expect("@3 [SERVER]: bob joined the chat!");
    a.expect("[SERVER]: bob joined the chat!");
    // After login: off, then on; a bad argument changes nothing.
    b.send("/ids off");
    b.expect_prefix("[SERVER]: ");
    a.send("plain");
    b.expect("alice: plain");
    a.expect("alice: plain");
    b.send("/ids maybe");
    b.expect_prefix("[SERVER]: Usage: /ids on|off");
    a.send("still plain");
    b.expect("alice: still plain");
    a.expect("alice: still plain");
    b.send("/ids on");
    b.expect_prefix("[SERVER]: ");
    b.send("/ids sideways");
    b.expect_prefix("[SERVER]: Usage: /ids on|off");
    a.send("tagged");
    b.expect("@6 alice: tagged");
    a.expect("alice: tagged");
    // /history shows ids to whoever has them on, and only on kept lines.
    b.send("/history 2");
    b.expect(&head(2));
    b.expect("@5 alice: still plain");
    b.expect("@6 alice: tagged");
    b.expect(HISTORY_END);
    a.send("/history 2");
    a.expect(&head(2));
    a.expect("alice: still plain");
    a.expect("alice: tagged");
    a.expect(HISTORY_END);
}

/// `/history [N]`: default 20, at most `--history`, N of 0 or not a number
/// gets a usage notice; always framed, even when nothing is kept yet.
#[test]
fn history_command_bounds() {
    let server = Server::start(&["--history", "25", "--rate", "0"]);
    let mut a = server.login("alice");
    let ask = |a: &mut Client, cmd: &str| -> Vec<String> {
        a.send(cmd);
        let h = a.expect_prefix("[SERVER]: History (");
        let lines = a.read_until(HISTORY_END);
        assert_eq!(h, head(lines.len()), "{cmd}");
        lines
    };
    assert_eq!(
        ask(&mut a, "/history"),
        ["[SERVER]: alice joined the chat!"]
    );
    let lines = say(&mut a, "alice", 30, "m");
    // Default: 20.
    assert_eq!(ask(&mut a, "/history"), lines[10..]);
    assert_eq!(ask(&mut a, "/history 1"), lines[29..]);
    assert_eq!(ask(&mut a, "/HISTORY 7"), lines[23..]);
    assert_eq!(ask(&mut a, "/history   3  "), lines[27..]);
    // More than --history: what is kept (the last 25).
    assert_eq!(ask(&mut a, "/history 26"), lines[5..]);
    assert_eq!(ask(&mut a, "/history 18446744073709551615"), lines[5..]);
    for bad in [
        "/history 0",
        "/history x",
        "/history -3",
        "/history 2.5",
        "/history 3 4",
        "/history 99999999999999999999999",
    ] {
        a.send(bad);
        let n = a.expect_prefix("[SERVER]: Usage: /history");
        assert!(!n.contains('@'), "{n}");
    }
    nothing_more(&mut a);
}

/// The default `--history` is 200: `/history 500` after 230 lines shows
/// the last 200, and a newcomer's block the last 20 of them.
#[test]
fn default_history_keeps_200_lines() {
    let server = Server::start(&["--rate", "0"]);
    let mut a = server.login("alice");
    let lines = say(&mut a, "alice", 230, "m");
    a.send("/history 500");
    a.expect(&head(200));
    assert_eq!(a.read_until(HISTORY_END), lines[30..]);
    let mut b = server.connect();
    b.expect_prefix("[SERVER]: Welcome!");
    b.send("bob");
    b.expect_prefix("[SERVER]: Welcome to the chat, bob!");
    b.expect(&head(20));
    assert_eq!(b.read_until(HISTORY_END), lines[210..]);
}

/// `--history 0`: nothing kept, no block for newcomers, `/history` says
/// so with an empty block, and ids still count, so `/since` says how many
/// lines are lost.
#[test]
fn history_zero_keeps_nothing_but_ids_still_count() {
    let server = Server::start(&["--history", "0"]);
    let mut a = arrive_with_ids(&server, "alice").client;
    let lines = say(&mut a, "alice", 3, "m");
    assert_eq!(
        lines.iter().map(|l| id_of(l)).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let bob = arrive_with_ids(&server, "bob");
    assert!(bob.before_join.is_empty(), "{:?}", bob.before_join);
    assert_eq!(id_of(&bob.join), 5);
    let mut b = bob.client;
    b.send("/history");
    b.expect(&head(0));
    b.expect(HISTORY_END);
    let carol = arrive(&server, &["/ids on", "/since 1"], "carol");
    let notices = carol.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with("[SERVER]: 4 lines after 1 are no longer kept"),
        "{notices:?}"
    );
    assert!(carol.block().is_empty());
    assert_eq!(id_of(&carol.join), 6);
}

/// `--join-history 0`: a newcomer gets no block, but `/history` and
/// `/since` still reach the kept lines.
#[test]
fn join_history_zero_sends_no_block_but_keeps_the_lines() {
    let server = Server::start(&["--join-history", "0"]);
    let mut a = arrive_with_ids(&server, "alice").client;
    let lines = say(&mut a, "alice", 3, "m");
    let bob = arrive(&server, &[], "bob");
    assert!(bob.before_join.is_empty(), "{:?}", bob.before_join);
    let mut b = bob.client;
    b.send("/history 2");
    b.expect(&head(2));
    b.expect("alice: m 2");
    b.expect("[SERVER]: bob joined the chat!");
    b.expect(HISTORY_END);
    let carol = arrive(&server, &["/ids on", "/since 2"], "carol");
    let mut want: Vec<String> = lines[1..].to_vec();
    want.push("@5 [SERVER]: bob joined the chat!".into());
    assert_eq!(carol.block(), want);
}

/// `/history` counts toward `--rate` (its answer can be long); `/ids` and
/// `/ping` do not.
#[test]
fn history_counts_toward_the_rate() {
    // Rate 0.5/s: a burst of one line.
    let server = Server::start(&["--rate", "0.5"]);
    let mut a = server.login("alice");
    // All in one write: one read, one instant, so no token comes back
    // between them however slow the machine.
    a.send("/history 1\n/history 1\n/ids on\n/ids off\n/ping p\nlate");
    a.expect(&head(1));
    a.expect("[SERVER]: alice joined the chat!");
    a.expect(HISTORY_END);
    let refused = a.expect_prefix("[SERVER]: You are sending too fast");
    assert!(refused.contains("not delivered"), "{refused}");
    a.expect_prefix("[SERVER]: Ids on");
    a.expect_prefix("[SERVER]: Ids off");
    a.expect("/pong p");
    a.expect_prefix("[SERVER]: You are sending too fast");
    let mut b = server.login("bob");
    // The refused chat line was never delivered, so never kept.
    b.send("/history 3");
    b.expect(&head(2));
    b.expect("[SERVER]: alice joined the chat!");
    b.expect("[SERVER]: bob joined the chat!");
    b.expect(HISTORY_END);
}
