//! Issue 11, PROTOCOL.md section 10: several servers, one room, through a
//! real Redis. Every test starts its own `redis-server` (tests/redis_support)
//! and real `chat-server` processes, and talks to them over real sockets.
//! The faults (a server or Redis going away) are in tests/cluster_faults.rs.
mod common;
mod redis_support;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

use common::{Client, Server};
use redis_support::{enter, login_ids, node, nodes, read_public, spread, welcome_with_ids, Redis};
use support::nothing_before_marker;

/// Lines each sender sends in the one-order test.
const PER_SENDER: usize = 25;

/// 3 servers, 12 users spread over them, 8 of them sending at once: every
/// user sees every line, in one and the same order, with the same ids;
/// ids count up by one; each sender's lines keep the order it sent them.
#[test]
fn one_order_with_the_same_ids_on_every_server() {
    let redis = Redis::start();
    let servers = nodes(&redis, 3, &["--rate", "0"]);
    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let clients = spread(&servers, &names, true);
    let go = Arc::new(Barrier::new(8));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let go = go.clone();
            thread::spawn(move || {
                if i < 8 {
                    go.wait();
                    for k in 0..PER_SENDER {
                        c.send(&format!("line {k} from {i}"));
                        if k % 5 == 4 {
                            thread::yield_now();
                        }
                    }
                }
                let (public, other) = read_public(&mut c, |p| {
                    p.iter().filter(|(_, t)| t.contains(": line ")).count() == 8 * PER_SENDER
                });
                (public, other)
            })
        })
        .collect();
    let seen: Vec<Vec<(u64, String)>> = handles
        .into_iter()
        .map(|h| {
            let (public, other) = h.join().expect("reader");
            assert!(other.is_empty(), "lines without an id: {other:?}");
            // From the first chat line on (earlier users also saw later joins).
            let first = public
                .iter()
                .position(|(_, t)| t.contains(": line "))
                .expect("a chat line");
            public[first..].to_vec()
        })
        .collect();
    let reference = &seen[0];
    assert_eq!(reference.len(), 8 * PER_SENDER);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s, reference, "user{i} saw another order or other ids");
    }
    for w in reference.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "ids count up by one: {w:?}");
    }
    let mut next: HashMap<String, usize> = HashMap::new();
    for (_, text) in reference {
        let (who, rest) = text.split_once(": line ").unwrap();
        let k: usize = rest.split(' ').next().unwrap().parse().unwrap();
        let n = next.entry(who.to_owned()).or_default();
        assert_eq!(k, *n, "{who}'s lines out of order");
        *n += 1;
    }
}

/// Two logins with one name on two servers at the same instant: exactly one
/// gets it, the other is told it is taken and may choose again. Run several
/// times, so the race goes both ways.
#[test]
fn a_name_is_won_by_exactly_one_of_two_servers() {
    let redis = Redis::start();
    let servers = nodes(&redis, 2, &[]);
    for round in 0..12 {
        let name = format!("racer{round}");
        let go = Arc::new(Barrier::new(2));
        let handles: Vec<_> = servers
            .iter()
            .map(|s| {
                let mut c = s.connect();
                c.expect_prefix("[SERVER]: ");
                let (go, name) = (go.clone(), name.clone());
                thread::spawn(move || {
                    go.wait();
                    c.send(&name);
                    let reply = c.line();
                    (c, reply)
                })
            })
            .collect();
        let results: Vec<(Client, String)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won: Vec<usize> = (0..2)
            .filter(|&i| results[i].1.starts_with("[SERVER]: Welcome to the chat, "))
            .collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: {:?}",
            [&results[0].1, &results[1].1]
        );
        let lost = 1 - won[0];
        let mut results = results;
        assert_eq!(
            results[lost].1,
            format!("[SERVER]: Sorry, the name {name} is taken. Please choose another name:"),
        );
        // The loser chooses again on the same connection.
        let other = format!("other{round}");
        results[lost].0.send(&other);
        results[lost].0.expect_welcome(&other);
    }
}

/// A name held on one server is taken on every other, whatever its case.
#[test]
fn a_name_held_on_one_server_is_taken_on_the_others() {
    let redis = Redis::start();
    let servers = nodes(&redis, 3, &[]);
    let _alice = servers[0].login("alice");
    for s in &servers[1..] {
        let mut c = s.connect();
        c.expect_prefix("[SERVER]: ");
        c.send("ALICE");
        c.expect("[SERVER]: Sorry, the name ALICE is taken. Please choose another name:");
    }
}

/// `/who` lists every server's users (sorted without regard to case);
/// `/msg` reaches a user on any server, whatever the case of the name, and
/// an unknown name is an error; a rename is seen everywhere, and a name
/// taken on another server cannot be taken by `/nick`.
#[test]
fn who_msg_and_nick_across_servers() {
    let redis = Redis::start();
    let servers = nodes(&redis, 3, &[]);
    let mut c = spread(&servers, &["carol", "alice", "Bob"], false);
    for (i, cl) in c.iter_mut().enumerate() {
        cl.send("/who");
        assert_eq!(
            cl.line(),
            "[SERVER]: 3 users online: alice, Bob, carol",
            "on server {i}"
        );
    }
    c[1].send("/msg CAROL hello over there");
    c[1].expect("[PM to carol]: hello over there");
    c[0].expect("[PM from alice]: hello over there");
    c[0].send("/msg bob psst");
    c[0].expect("[PM to Bob]: psst");
    c[2].expect("[PM from carol]: psst");
    c[2].send("/msg nobody hi");
    c[2].expect("[SERVER]: No user named nobody is online.");
    c[2].send("/nick alice");
    c[2].expect("[SERVER]: Sorry, the name alice is taken.");
    c[2].send("/nick robert");
    for cl in c.iter_mut() {
        cl.expect("[SERVER]: Bob is now known as robert.");
    }
    c[0].send("/msg Robert renamed?");
    c[0].expect("[PM to robert]: renamed?");
    c[2].expect("[PM from carol]: renamed?");
    c[1].send("/msg bob old name");
    c[1].expect("[SERVER]: No user named bob is online.");
    // The old name is free again, on any server.
    let mut bob = enter(&servers[0], "bob");
    bob.send("/who");
    bob.expect("[SERVER]: 4 users online: alice, bob, carol, robert");
}

/// Join and leave notices reach every server, as on one server; above
/// `--announce-limit` only the newcomer gets its join notice and nobody
/// gets leave notices (the whole room's count decides).
#[test]
fn join_and_leave_notices_follow_the_announce_limit() {
    let redis = Redis::start();
    let servers = nodes(&redis, 3, &["--announce-limit", "3"]);
    // Three users: every join told to all (spread reads them).
    let mut c = spread(&servers, &["ann", "ben", "cat"], false);
    // A fourth: the room holds 4 > 3, only the newcomer is told.
    let mut dan = servers[1].connect();
    dan.expect_prefix("[SERVER]: ");
    dan.send("dan");
    let welcome = dan.expect_prefix("[SERVER]: Welcome to the chat, dan!");
    assert!(welcome.contains("4 users online"), "{welcome}");
    dan.read_until("[SERVER]: dan joined the chat!");
    {
        let (first, rest) = c.split_first_mut().unwrap();
        let mut watchers: Vec<&mut Client> = rest.iter_mut().collect();
        watchers.push(&mut dan);
        nothing_before_marker(first, "ann", &mut watchers);
    }
    // dan leaves (4 in the room): nobody is told. Then cat (3): all told.
    dan.send("/quit");
    dan.expect("[SERVER]: Goodbye, dan!");
    {
        let (first, rest) = c.split_first_mut().unwrap();
        let mut watchers: Vec<&mut Client> = rest.iter_mut().collect();
        nothing_before_marker(first, "ann", &mut watchers);
    }
    c[2].send("/quit");
    c[2].expect("[SERVER]: Goodbye, cat!");
    c[0].expect("[SERVER]: cat left the chat.");
    c[1].expect("[SERVER]: cat left the chat.");
    // A dropped connection is told as disconnected, on the other servers.
    let ben = c.remove(1);
    drop(ben);
    c[0].expect("[SERVER]: ben has disconnected.");
}

/// The rate limit holds per user, as on one server: a burst of twice
/// `--rate`, then each refused line is told to its sender, and the users on
/// the other servers get exactly the lines that were let through.
#[test]
fn the_rate_limit_is_per_user_on_every_server() {
    let redis = Redis::start();
    let servers = nodes(&redis, 2, &["--rate", "2"]);
    let mut c = spread(&servers, &["fast", "calm"], false);
    for i in 0..6 {
        c[0].send(&format!("m{i}"));
    }
    let mut got = Vec::new();
    let mut refused = 0;
    while got.len() < 4 || refused < 2 {
        let l = c[0].line();
        if l.contains("sending too fast") {
            refused += 1;
        } else {
            got.push(l);
        }
    }
    assert_eq!(got, ["fast: m0", "fast: m1", "fast: m2", "fast: m3"]);
    assert_eq!(refused, 2);
    for i in 0..4 {
        c[1].expect(&format!("fast: m{i}"));
    }
    let (fast, calm) = c.split_at_mut(1);
    nothing_before_marker(&mut calm[0], "calm", &mut [&mut fast[0]]);
}

/// History is the room's, not a server's: a newcomer on another server gets
/// the recent lines with their ids, `/history` and `/since` work on any
/// server, and a server started later (or restarted) loads them from Redis
/// and continues the ids.
#[test]
fn history_and_since_across_servers_and_restarts() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let mut alice = login_ids(&a, "alice");
    for i in 1..=5 {
        alice.send(&format!("l{i}"));
    }
    let (lines, _) = read_public(&mut alice, |p| p.len() == 5);
    let ids: Vec<u64> = lines.iter().map(|(id, _)| *id).collect();
    let b = node(&redis, &[]);
    let mut bob = b.connect();
    bob.expect_prefix("[SERVER]: ");
    bob.send("/ids on");
    bob.expect_prefix("[SERVER]: Ids on");
    bob.send("bob");
    let history = welcome_with_ids(&mut bob, "bob");
    let want: Vec<String> =
        std::iter::once(format!("@{} [SERVER]: alice joined the chat!", ids[0] - 1))
            .chain(lines.iter().map(|(id, t)| format!("@{id} {t}")))
            .collect();
    assert_eq!(history, want);
    bob.send("/history 3");
    bob.expect("[SERVER]: History (3 lines):");
    bob.expect(&format!("@{} alice: l4", ids[3]));
    bob.expect(&format!("@{} alice: l5", ids[4]));
    bob.expect(&format!("@{} [SERVER]: bob joined the chat!", ids[4] + 1));
    bob.expect("[SERVER]: End of history.");
    // /since on a third server, started after the lines were sent.
    let c = node(&redis, &[]);
    let mut carol = c.connect();
    carol.expect_prefix("[SERVER]: ");
    carol.send("/ids on");
    carol.expect_prefix("[SERVER]: Ids on");
    carol.send(&format!("/since {}", ids[2]));
    carol.expect_prefix("[SERVER]: You will get the lines after");
    carol.send("carol");
    let got = welcome_with_ids(&mut carol, "carol");
    let bob_join = got.last().cloned().unwrap_or_default();
    assert!(
        bob_join.ends_with("[SERVER]: bob joined the chat!"),
        "{got:?}"
    );
    assert_eq!(
        got[..2],
        [
            format!("@{} alice: l4", ids[3]),
            format!("@{} alice: l5", ids[4])
        ]
    );
    // Every server stops; a new one loads the room from Redis and goes on.
    drop((alice, bob, carol));
    drop((a, b, c));
    let d = node(&redis, &[]);
    let mut dave = d.connect();
    dave.expect_prefix("[SERVER]: ");
    dave.send("/ids on");
    dave.expect_prefix("[SERVER]: Ids on");
    dave.send(&format!("/since {}", ids[3]));
    dave.expect_prefix("[SERVER]: You will get the lines after");
    dave.send("dave");
    let got = welcome_with_ids(&mut dave, "dave");
    assert_eq!(got[0], format!("@{} alice: l5", ids[4]), "{got:?}");
    dave.send("after the restart");
    let (after, _) = read_public(&mut dave, |p| {
        p.iter().any(|(_, t)| t == "dave: after the restart")
    });
    let last_id = after.last().unwrap().0;
    assert!(
        last_id > ids[4],
        "ids went back: {last_id} after {}",
        ids[4]
    );
}

/// A user on server A who remembers the last id resumes on server B after A
/// died (`kill -9`): with `/since`, it gets every line it missed, once.
#[test]
fn a_user_resumes_on_another_server_after_its_server_died() {
    let redis = Redis::start();
    let servers = nodes(&redis, 2, &["--node-ttl", "2"]);
    let mut c = spread(&servers, &["wanda", "bert"], true);
    c[1].send("before");
    let (seen, _) = read_public(&mut c[0], |p| p.iter().any(|(_, t)| t == "bert: before"));
    let last = seen.last().unwrap().0;
    let mut servers = servers;
    let a = servers.remove(0);
    let wanda = c.remove(0);
    drop(a); // kill -9
    drop(wanda);
    let mut bert = c.remove(0);
    for i in 0..3 {
        bert.send(&format!("while away {i}"));
    }
    let (missed, _) = read_public(&mut bert, |p| {
        p.iter().any(|(_, t)| t == "bert: while away 2")
    });
    // wanda comes back on B with /since; her name is free once A is taken
    // out of the room (--node-ttl), so she may have to try it again.
    let b = &servers[0];
    let mut w = b.connect();
    w.expect_prefix("[SERVER]: ");
    w.send("/ids on");
    w.expect_prefix("[SERVER]: Ids on");
    w.send(&format!("/since {last}"));
    w.expect_prefix("[SERVER]: You will get the lines after");
    loop {
        w.send("wanda");
        let l = w.line();
        if l.starts_with("[SERVER]: Welcome to the chat, wanda!") {
            break;
        }
        assert_eq!(
            l,
            "[SERVER]: Sorry, the name wanda is taken. Please choose another name:"
        );
        thread::sleep(std::time::Duration::from_millis(200));
    }
    w.expect_prefix("[SERVER]: History (");
    let replay = w.read_until("[SERVER]: End of history.");
    let want: Vec<String> = missed
        .iter()
        .filter(|(id, _)| *id > last)
        .map(|(id, t)| format!("@{id} {t}"))
        .collect();
    // What she missed, in order, once; then (if bert had not seen it yet)
    // her own leave, told when A was taken out of the room.
    assert_eq!(replay[..want.len()], want[..], "replay {replay:?}");
    let rest = &replay[want.len()..];
    assert!(
        rest.is_empty()
            || (rest.len() == 1 && rest[0].ends_with("[SERVER]: wanda has disconnected.")),
        "replay {replay:?}"
    );
    assert!(
        replay
            .iter()
            .filter(|l| l.ends_with("wanda has disconnected."))
            .count()
            == 1,
        "her leave once: {replay:?}"
    );
}

/// `--cluster-name` and the `/DB` of `--redis` make separate rooms in one
/// Redis: only servers with the same URL and name share a room (its lines,
/// its names).
#[test]
fn cluster_name_and_db_separate_rooms() {
    let redis = Redis::start();
    let url = redis.url();
    let db1 = format!("{url}/1");
    let a = Server::start(&["--redis", &url, "--cluster-name", "red"]);
    let b = Server::start(&["--redis", &url, "--cluster-name", "blue"]);
    let c = Server::start(&["--redis", &url, "--cluster-name", "red"]);
    let d = Server::start(&["--redis", &db1, "--cluster-name", "red"]);
    let mut alice = a.login("alice");
    let mut carol = c.login("carol");
    alice.read_until("[SERVER]: carol joined the chat!");
    // The same name is free in the other rooms.
    let mut blue = b.login("alice");
    let mut other_db = d.login("alice");
    alice.send("hello red");
    alice.expect("alice: hello red");
    carol.expect("alice: hello red");
    for x in [&mut blue, &mut other_db] {
        x.send("/who");
        x.expect("[SERVER]: 1 user online: alice");
        support::nothing_more(x);
    }
    carol.send("/who");
    carol.expect("[SERVER]: 2 users online: alice, carol");
}

/// `--max-clients` stays per server: with 1 each, two servers of one room
/// hold a user each, and each is full for a second one.
#[test]
fn max_clients_is_per_server() {
    let redis = Redis::start();
    let servers = nodes(&redis, 2, &["--max-clients", "1"]);
    let mut alice = servers[0].login("alice");
    let _bob = servers[1].login("bob");
    alice.read_until("[SERVER]: bob joined the chat!");
    for s in &servers {
        let mut extra = s.connect();
        assert_eq!(
            extra.expect_eof(),
            vec!["[SERVER]: The server is full; please try again later."]
        );
    }
}
