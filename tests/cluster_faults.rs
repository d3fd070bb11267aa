//! Issue 11, PROTOCOL.md section 10: what a cluster does when a server or
//! Redis goes away, against real `redis-server` and `chat-server`
//! processes (stopped and killed by PID), over real sockets.
mod common;
mod redis_support;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{Client, Server};
use redis_support::{
    enter, free_port, id_of, node, node_id, nodes, read_public, spread, wait_on, Keep, Redis,
};
use support::nothing_before_marker;

/// The `--node-ttl` of these tests, in seconds.
const TTL: u64 = 2;

/// Reads the next lines of `c` until each of `want` has come once (in any
/// order); returns the other lines that came meanwhile.
fn read_all_of(c: &mut Client, want: &[&str]) -> Vec<String> {
    let mut missing: HashSet<String> = want.iter().map(|s| s.to_string()).collect();
    let mut other = Vec::new();
    while !missing.is_empty() {
        let l = c.line();
        let bare = if id_of(&l).is_some() {
            l.split_once(' ').map_or("", |(_, t)| t).to_owned()
        } else {
            l.clone()
        };
        if !missing.remove(&bare) {
            other.push(l);
        }
    }
    other
}

/// SIGTERM on one server: its users leave the room at once, and each user on
/// the other servers is told once; their names are free at once; the server
/// exits 0.
#[test]
fn a_stopped_server_takes_its_users_out_once() {
    let redis = Redis::start();
    let mut servers = nodes(&redis, 3, &[]);
    let mut c = spread(&servers, &["ann1", "bea", "cid", "ann2"], false);
    // ann1 and ann2 are on server 0.
    servers[0].signal(libc::SIGTERM);
    assert_eq!(servers[0].wait_exit(Duration::from_secs(10)), Some(0));
    let gone = [
        "[SERVER]: ann1 has disconnected.",
        "[SERVER]: ann2 has disconnected.",
    ];
    for i in [1, 2] {
        let other = read_all_of(&mut c[i], &gone);
        assert!(other.is_empty(), "{other:?}");
    }
    let mut ann1 = enter(&servers[1], "ann1");
    for i in [1, 2] {
        c[i].expect("[SERVER]: ann1 joined the chat!");
    }
    let (bea, rest) = c[1..3].split_first_mut().unwrap();
    nothing_before_marker(bea, "bea", &mut [&mut rest[0], &mut ann1]);
}

/// `kill -9` on one server: the others take its users out within
/// `--node-ttl` (+ 2 s), each user told once (not once per surviving
/// server, not again later); the names are free again.
#[test]
fn a_dead_server_is_taken_out_within_the_node_ttl_once() {
    let redis = Redis::start();
    let ttl = TTL.to_string();
    let mut servers = nodes(&redis, 3, &["--node-ttl", &ttl]);
    let mut c = spread(&servers, &["dee1", "eli", "fay", "dee2"], false);
    let dead = servers.remove(0);
    let killed = Instant::now();
    drop(dead); // SIGKILL, and waited for
    let gone = [
        "[SERVER]: dee1 has disconnected.",
        "[SERVER]: dee2 has disconnected.",
    ];
    for i in [1, 2] {
        let other = read_all_of(&mut c[i], &gone);
        assert!(other.is_empty(), "{other:?}");
    }
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(TTL + 2),
        "taken out after {took:?}, --node-ttl {TTL}"
    );
    // Long enough for every survivor to have looked again: still once.
    thread::sleep(Duration::from_secs(TTL));
    let (eli, rest) = c[1..3].split_first_mut().unwrap();
    nothing_before_marker(eli, "eli", &mut [&mut rest[0]]);
    let mut dee1 = enter(&servers[1], "dee1");
    c[1].expect("[SERVER]: dee1 joined the chat!");
    c[2].expect("[SERVER]: dee1 joined the chat!");
    dee1.send("/who");
    dee1.expect("[SERVER]: 3 users online: dee1, eli, fay");
}

/// A server that stops answering for longer than `--node-ttl` (SIGSTOP) is
/// taken out by the others; when it runs again it finds out, and its users
/// are back in the room (told as joined), with their names.
#[test]
fn a_paused_server_comes_back_with_its_users() {
    let redis = Redis::start();
    let ttl = TTL.to_string();
    let servers = nodes(&redis, 2, &["--node-ttl", &ttl]);
    let mut c = spread(&servers, &["gus", "hal"], false);
    servers[0].signal(libc::SIGSTOP);
    c[1].expect("[SERVER]: gus has disconnected.");
    servers[0].signal(libc::SIGCONT);
    c[1].expect("[SERVER]: gus joined the chat!");
    c[0].read_until("[SERVER]: gus joined the chat!");
    c[1].send("/who");
    c[1].expect("[SERVER]: 2 users online: gus, hal");
    let mut other = servers[1].connect();
    other.expect_prefix("[SERVER]: ");
    other.send("gus");
    other.expect("[SERVER]: Sorry, the name gus is taken. Please choose another name:");
    let (gus, hal) = c.split_at_mut(1);
    nothing_before_marker(&mut gus[0], "gus", &mut [&mut hal[0]]);
}

/// One user's connection driven by two threads: one sends a numbered line
/// every few milliseconds while `sending`, one keeps every line it reads.
struct Busy {
    /// The user's name.
    name: String,
    /// Every line read so far.
    lines: Arc<Mutex<Vec<String>>>,
    /// Lines sent so far.
    sent: Arc<AtomicUsize>,
    /// Cleared to stop sending.
    sending: Arc<AtomicBool>,
    /// The sender thread, if this user sends.
    sender: Option<JoinHandle<()>>,
    /// The reader thread: returns at EOF or once it read `[done]`.
    reader: JoinHandle<bool>,
}

impl Busy {
    fn start(mut c: Client, name: &str, sends: bool) -> Busy {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let sending = Arc::new(AtomicBool::new(sends));
        let sender = sends.then(|| {
            let mut w = c.stream.try_clone().unwrap();
            let (sent, sending, name) = (sent.clone(), sending.clone(), name.to_owned());
            thread::spawn(move || {
                use std::io::Write;
                while sending.load(Ordering::SeqCst) {
                    let k = sent.load(Ordering::SeqCst);
                    w.write_all(format!("{name} says {k}\n").as_bytes())
                        .expect("send");
                    sent.store(k + 1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(7));
                }
            })
        });
        let keep = lines.clone();
        let reader = thread::spawn(move || loop {
            match c.try_line() {
                Some(l) => {
                    let done = l.ends_with(": [done]");
                    keep.lock().unwrap().push(l);
                    if done {
                        return true;
                    }
                }
                None => return false,
            }
        });
        Busy {
            name: name.to_owned(),
            lines,
            sent,
            sending,
            sender,
            reader,
        }
    }

    /// How many lines read so far satisfy `pred`.
    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    fn stop_sending(&mut self) {
        self.sending.store(false, Ordering::SeqCst);
        if let Some(h) = self.sender.take() {
            h.join().unwrap();
        }
    }
}

/// What users saw while Redis went away and came back.
struct Outage {
    /// The servers, still running.
    servers: Vec<Server>,
    /// Redis, running again.
    redis: Redis,
    /// The id of the last public line before Redis went away.
    cut: u64,
}

/// Redis goes away (`kill -9`) while users on two servers are sending, and
/// comes back (fresh, or with its append-only file): users stay connected
/// and are told both; lines sent meanwhile are refused with a notice; every
/// user sees one and the same sequence (nothing delivered on one server that
/// the other did not get), with ids that only grow, no line twice, and each
/// sender's every line either delivered or told as not delivered.
fn redis_goes_away_while_users_send(keep: Keep) -> Outage {
    let mut redis = Redis::start_keeping(keep);
    let servers = nodes(&redis, 2, &["--rate", "0", "--history", "1000"]);
    let names = ["ida", "jon", "kim", "lou"];
    let clients = spread(&servers, &names, true);
    // ida (server 0) and jon (server 1) send; kim and lou only read.
    let mut users: Vec<Busy> = clients
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (c, n))| Busy::start(c, n, i < 2))
        .collect();
    let chat = |u: &Busy| u.count(|l| l.contains(" says "));
    wait_on(&servers, "lines flow", Duration::from_secs(10), || {
        users.iter().all(|u| chat(u) >= 20)
    });
    redis.kill();
    let lost =
        "[SERVER]: The link to the cluster is lost; lines are not delivered until it is back.";
    wait_on(
        &servers,
        "users told the link is lost",
        Duration::from_secs(10),
        || users.iter().all(|u| u.count(|l| l == lost) == 1),
    );
    let refused = |l: &str| {
        l.starts_with("[SERVER]: The link to the cluster is down; that was not delivered.")
    };
    wait_on(
        &servers,
        "lines refused while Redis is away",
        Duration::from_secs(10),
        || users[..2].iter().all(|u| u.count(refused) >= 5),
    );
    redis.restart();
    let back = "[SERVER]: The link to the cluster is back; lines are delivered again.";
    wait_on(
        &servers,
        "users told the link is back",
        Duration::from_secs(10),
        || users.iter().all(|u| u.count(|l| l == back) == 1),
    );
    let before = users.iter().map(chat).max().unwrap();
    wait_on(
        &servers,
        "lines flow again",
        Duration::from_secs(10),
        || users.iter().all(|u| chat(u) >= before + 20),
    );
    for u in users.iter_mut().take(2) {
        u.stop_sending();
    }
    // A last line, after everything the senders sent.
    let mut closer = servers[0].connect();
    closer.expect_prefix("[SERVER]: ");
    closer.send("closer");
    closer.read_until_match(|l| l.ends_with("[SERVER]: closer joined the chat!"));
    closer.send("[done]");
    closer.read_until("closer: [done]");
    let all: Vec<(Vec<String>, usize)> = users
        .into_iter()
        .map(|u| {
            let sent = u.sent.load(Ordering::SeqCst);
            assert!(u.reader.join().unwrap(), "{} was disconnected", u.name);
            let lines = u.lines.lock().unwrap().clone();
            (lines, sent)
        })
        .collect();
    let seen: Vec<(Vec<String>, Vec<String>, usize)> = all
        .iter()
        .map(|(lines, sent)| {
            let (public, other) = lines.iter().cloned().partition(|l| id_of(l).is_some());
            (public, other, *sent)
        })
        .collect();
    // From the first line every user saw (earlier users also saw later
    // joins) to the end: one id, one line, everywhere; ids only grow; no
    // line twice.
    let start = seen
        .iter()
        .map(|(p, _, _)| id_of(&p[0]).unwrap())
        .max()
        .unwrap();
    let mut union: BTreeMap<u64, String> = BTreeMap::new();
    for (i, (p, _, _)) in seen.iter().enumerate() {
        let mut texts = HashSet::new();
        let mut prev = 0;
        for l in p.iter().filter(|l| id_of(l).unwrap() >= start) {
            let (id, text) = (id_of(l).unwrap(), l.split_once(' ').unwrap().1);
            assert!(
                id > prev,
                "{}: ids went back or repeated: {id} after {prev}",
                names[i]
            );
            prev = id;
            assert!(texts.insert(text), "{}: a line came twice: {l}", names[i]);
            let first = union.entry(id).or_insert_with(|| text.to_owned());
            assert_eq!(first, text, "two lines with id {id}");
        }
    }
    // Nothing delivered on one server that the others did not get, or the
    // users who missed it were told how many lines they lost (only a Redis
    // that lost its data can do that: what it published to one server just
    // before it died is gone for the others).
    for (i, (p, other, _)) in seen.iter().enumerate() {
        let got: HashSet<u64> = p.iter().filter_map(|l| id_of(l)).collect();
        let missed = union.keys().filter(|id| !got.contains(id)).count();
        let told: usize = other
            .iter()
            .filter(|l| l.contains(" lost while the link to the cluster was down"))
            .map(|l| {
                l["[SERVER]: ".len()..]
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        if keep == Keep::Aof {
            assert_eq!((missed, told), (0, 0), "{}", names[i]);
        } else {
            assert!(missed <= told, "{}: missed {missed}, told {told}", names[i]);
        }
    }
    // Nobody left, so nobody joins again: the only join is the closer's.
    let joins: Vec<&String> = union
        .values()
        .filter(|l| l.ends_with(" joined the chat!"))
        .collect();
    assert_eq!(joins.len(), 1, "{joins:?}");
    // Every line a sender sent was delivered to it, or it was told.
    for (i, name) in names[..2].iter().enumerate() {
        let (p, other, sent) = &seen[i];
        let mine = format!(" {name}: {name} says ");
        let delivered = p.iter().filter(|l| l.contains(&mine)).count();
        let told = other
            .iter()
            .filter(|l| {
                refused(l) || l.starts_with("[SERVER]: One of your lines was not delivered")
            })
            .count();
        assert_eq!(
            delivered + told,
            *sent,
            "{name}: {delivered} delivered, {told} told"
        );
    }
    // The last line kim saw before she was told the link was lost.
    let cut = all[2]
        .0
        .iter()
        .take_while(|l| *l != lost)
        .filter_map(|l| id_of(l))
        .last()
        .unwrap();
    Outage {
        servers,
        redis,
        cut,
    }
}
/// The history a newcomer on a new server of the cluster gets (ids).
fn history_ids(o: &Outage) -> Vec<u64> {
    let s = node(&o.redis, &["--history", "1000"]);
    let mut c = s.connect();
    c.expect_prefix("[SERVER]: ");
    c.send("/ids on");
    c.expect_prefix("[SERVER]: Ids on");
    c.send("newbie");
    c.read_until_match(|l| l.ends_with("[SERVER]: newbie joined the chat!"));
    c.send("/history 1000");
    c.read_until_match(|l| l.starts_with("[SERVER]: History ("));
    c.read_until("[SERVER]: End of history.")
        .iter()
        .filter_map(|l| id_of(l))
        .collect()
}

/// A fresh Redis (nothing kept on disk): the room goes on with ids that
/// continue; what Redis kept is gone, so a server started afterwards has
/// only the lines since the restart (the running servers keep theirs).
#[test]
fn redis_killed_and_restarted_fresh() {
    let o = redis_goes_away_while_users_send(Keep::Nothing);
    let ids = history_ids(&o);
    assert!(ids.iter().all(|&id| id > o.cut), "{} {ids:?}", o.cut);
    drop(o.servers);
}

/// A Redis with its append-only file: the room goes on, and the history
/// from before the crash is still there for a server started afterwards.
#[test]
fn redis_killed_and_restarted_with_its_append_only_file() {
    let o = redis_goes_away_while_users_send(Keep::Aof);
    let ids = history_ids(&o);
    assert!(ids.contains(&o.cut), "{} {ids:?}\n{}", o.cut, o.redis.log());
    drop(o.servers);
}

/// Redis loses its data while one server is behind the other (it was cut
/// off and missed the last lines), and that server reconnects first while
/// its user keeps sending: no id is given to two lines (ids go on after
/// the last id any server delivered), the users of the server that was
/// behind are told how many lines they lost, and both servers' users see
/// the same lines with the same ids afterwards.
#[test]
fn no_id_is_given_twice_when_redis_loses_its_data() {
    let mut redis = Redis::start();
    let servers = nodes(&redis, 2, &["--rate", "0"]);
    let mut c = spread(&servers, &["max", "ned"], true);
    // B stops and is cut off from Redis; A goes on: max sees 3 lines that
    // B never gets.
    servers[1].signal(libc::SIGSTOP);
    assert_eq!(redis.kill_clients(&node_id(&servers[1])), 2);
    for i in 0..3 {
        c[0].send(&format!("ahead {i}"));
    }
    read_all_of(&mut c[0], &["max: ahead 0", "max: ahead 1", "max: ahead 2"]);
    // Redis dies and comes back empty; B runs again first, A a moment later.
    redis.kill();
    servers[0].signal(libc::SIGSTOP);
    redis.restart();
    let mut users: Vec<Busy> = c
        .into_iter()
        .zip(["max", "ned"])
        .map(|(c, n)| Busy::start(c, n, n == "ned"))
        .collect();
    servers[1].signal(libc::SIGCONT);
    thread::sleep(Duration::from_millis(300));
    servers[0].signal(libc::SIGCONT);
    let back = "[SERVER]: The link to the cluster is back; lines are delivered again.";
    wait_on(&servers, "both back", Duration::from_secs(10), || {
        users.iter().all(|u| u.count(|l| l == back) == 1)
    });
    wait_on(
        &servers,
        "ned's lines flow",
        Duration::from_secs(10),
        || {
            users
                .iter()
                .all(|u| u.count(|l| l.contains(" ned: ned says ")) >= 10)
        },
    );
    users[1].stop_sending();
    let mut closer = servers[0].connect();
    closer.expect_prefix("[SERVER]: ");
    closer.send("closer");
    closer.read_until_match(|l| l.ends_with("[SERVER]: closer joined the chat!"));
    closer.send("[done]");
    closer.read_until("closer: [done]");
    let seen: Vec<Vec<String>> = users
        .into_iter()
        .map(|u| {
            assert!(u.reader.join().unwrap(), "{} was disconnected", u.name);
            let lines = u.lines.lock().unwrap().clone();
            lines
        })
        .collect();
    let mut union: BTreeMap<u64, String> = BTreeMap::new();
    for lines in &seen {
        let mut prev = 0;
        for l in lines.iter().filter(|l| id_of(l).is_some()) {
            let (id, text) = (id_of(l).unwrap(), l.split_once(' ').unwrap().1);
            assert!(id > prev, "ids went back: {id} after {prev}: {lines:?}");
            prev = id;
            let first = union.entry(id).or_insert_with(|| text.to_owned());
            assert_eq!(first, text, "two lines with id {id}");
        }
    }
    let ned_lines = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.contains(" ned: ned says "))
            .cloned()
            .collect()
    };
    assert_eq!(ned_lines(&seen[0]), ned_lines(&seen[1]));
    assert!(
        seen[1]
            .iter()
            .any(|l| l == "[SERVER]: 3 lines were lost while the link to the cluster was down."),
        "{:?}",
        seen[1]
    );
}

/// A server too slow to read its subscription (here: stopped) is dropped by
/// Redis (`client-output-buffer-limit pubsub`); that is a lost link like
/// any other: its users are told, and once it is back they get every line
/// they missed from the history kept in Redis, in order, once.
#[test]
fn a_subscriber_redis_dropped_catches_up() {
    const LINES: usize = 1500;
    let redis = Redis::start();
    redis.call(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 65536 0 0",
    ]);
    let servers = nodes(&redis, 2, &["--rate", "0", "--history", "2000"]);
    let mut c = spread(&servers, &["quin", "rosa"], true);
    servers[1].signal(libc::SIGSTOP);
    let mut w = c[0].stream.try_clone().unwrap();
    let pad = "x".repeat(3000);
    let sender = thread::spawn(move || {
        use std::io::Write;
        for k in 0..LINES {
            w.write_all(format!("{k} {pad}\n").as_bytes())
                .expect("send");
        }
    });
    let (sent, _) = read_public(&mut c[0], |p| p.len() == LINES);
    sender.join().unwrap();
    let clients = redis.text(&["CLIENT", "LIST"]);
    let b = node_id(&servers[1]);
    assert!(
        !clients.contains(&format!("{b}:sub")),
        "Redis did not drop the stopped server's subscription:\n{clients}"
    );
    servers[1].signal(libc::SIGCONT);
    let (got, other) = read_public(&mut c[1], |p| p.len() == LINES);
    assert_eq!(got, sent);
    assert!(
        other
            .iter()
            .any(|l| l.starts_with("[SERVER]: The link to the cluster is lost")),
        "{other:?}"
    );
    let back = "[SERVER]: The link to the cluster is back; lines are delivered again.";
    if !other.iter().any(|l| l == back) {
        c[1].read_until(back);
    }
    // Nothing more (no line twice): the next line is a new one.
    c[1].send("after");
    for u in c.iter_mut() {
        let (next, _) = read_public(u, |p| !p.is_empty());
        assert_eq!(next[0].1, "rosa: after");
    }
}

/// Redis refuses to write (its `maxmemory` is reached): a server treats
/// that as a lost link: its users are told, the line Redis refused is told
/// to its sender as not delivered (nobody got it), lines are refused until
/// Redis takes writes again, and then the room goes on.
#[test]
fn redis_refusing_writes_is_a_lost_link() {
    let redis = Redis::start();
    let servers = nodes(&redis, 2, &[]);
    let mut c = spread(&servers, &["oli", "pam"], false);
    redis.call(&["CONFIG", "SET", "maxmemory", "1"]);
    c[0].send("too much");
    c[0].expect(
        "[SERVER]: The link to the cluster is lost; lines are not delivered until it is back.",
    );
    c[0].send("meanwhile");
    c[0].expect("[SERVER]: The link to the cluster is down; that was not delivered. Please try again in a moment.");
    redis.call(&["CONFIG", "SET", "maxmemory", "0"]);
    let after =
        c[0].read_until("[SERVER]: The link to the cluster is back; lines are delivered again.");
    assert!(after.is_empty(), "{after:?}");
    c[0].expect("[SERVER]: One of your lines was not delivered (the link to the cluster was lost); please send it again.");
    c[1].send("/ping x");
    let mut pam = c.remove(1);
    let got = pam.read_until("/pong x");
    assert!(!got.iter().any(|l| l.contains("too much")), "{got:?}");
    support::room_works(&mut c[0], "oli", &mut pam, "pam", "after");
}

/// Redis not running at start: exit 1 with one line that says so.
#[test]
fn no_redis_at_start_is_one_line_and_exit_1() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-web",
            "--redis",
            &url,
        ])
        .output()
        .expect("run chat-server");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("Redis") && err.contains(&port.to_string()),
        "{err}"
    );
}

/// `--history-db` with `--redis`: refused, exit 1, one line.
#[test]
fn history_db_with_redis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--host", "127.0.0.1", "--port", "0", "--no-web"])
        .args(["--redis", "redis://127.0.0.1:1", "--history-db"])
        .arg(&db)
        .output()
        .expect("run chat-server");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--history-db") && err.contains("--redis"),
        "{err}"
    );
    assert!(!db.exists(), "the file was created");
}

/// `--reuse-port`: two servers listen on one port; the kernel spreads the
/// connections over both, and their users are in one room.
#[test]
fn two_servers_share_one_port() {
    let redis = Redis::start();
    let port = free_port();
    let url = redis.url();
    let args = ["--redis", url.as_str(), "--reuse-port", "--no-web"];
    let servers = [Server::start_at(port, &args), Server::start_at(port, &args)];
    assert_eq!(servers[0].addr, servers[1].addr);
    let names: Vec<String> = (0..16).map(|i| format!("port{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut clients = spread(&servers[..1], &names, false);
    for (i, s) in servers.iter().enumerate() {
        let n = s.logs().matches(" logged in as ").count();
        assert!(n > 0, "server {i} got no user of 16");
    }
    let (first, rest) = clients.split_first_mut().unwrap();
    let mut watchers: Vec<&mut Client> = rest.iter_mut().collect();
    nothing_before_marker(first, "port0", &mut watchers);
}
