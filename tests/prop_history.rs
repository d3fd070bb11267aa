//! Property test of section 8 (sans-IO, like `prop_room.rs`): any
//! interleaving of users, commands, lost connections and reconnects with
//! `/since`. One observer is `chat-client`'s own resume logic
//! ([`Resume`]) on a connection that comes and goes; everything it shows
//! with an id, replayed or live, is the room's record ([`Recorder::public`])
//! without a gap or a repeat, except where the server said how many lines
//! it no longer kept, and then that count is exactly the gap.
use std::time::{Duration, Instant};

use chatroom::client::login::parse_join;
use chatroom::client::resume::{split_id, Resume};
use chatroom::room::{ConnId, Gone, History, Recorder, Room, RoomConfig};
use proptest::prelude::*;

/// Connections 0..USERS are other users; the observer uses the ones above.
const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// A user connects (and, with a name, logs in).
    Connect(ConnId, &'static str),
    /// A user sends a line.
    Line(ConnId, &'static str),
    /// A user's connection ends.
    Close(ConnId, Gone),
    /// A user times out.
    TimedOut(ConnId),
    /// Time passes (the rate limit refills).
    Wait(u64),
    /// The observer's client connects and sends its set-up lines.
    ObsConnect,
    /// The observer sends its name.
    ObsName,
    /// The observer's connection is cut: it reads nothing more from it,
    /// while the server may still hold it in the room.
    ObsCut,
    /// The server notices the observer's (cut or live) connection is gone.
    ObsGone,
}

const NAMES: &[&str] = &["alice", "bob", "carol", "dave", "x"];

const LINES: &[&str] = &[
    "hi",
    "hello there",
    "/me waves",
    "/msg alice psst",
    "/msg obs1 psst",
    "/who",
    "/history 2",
    "/ping t",
    "/nick zed",
    "/nick alice2",
    "/ids on",
    "/ids off",
    "/quit bye",
    "/frob",
    "",
];

fn op() -> impl Strategy<Value = Op> {
    let id = 0..USERS;
    prop_oneof![
        3 => (id.clone(), prop::sample::select(NAMES)).prop_map(|(i, n)| Op::Connect(i, n)),
        12 => (id.clone(), prop::sample::select(LINES)).prop_map(|(i, l)| Op::Line(i, l)),
        2 => (id.clone(), prop::sample::select(&[Gone::Disconnected, Gone::TooSlow][..]))
            .prop_map(|(i, g)| Op::Close(i, g)),
        1 => id.prop_map(Op::TimedOut),
        1 => (0u64..2000).prop_map(Op::Wait),
        2 => Just(Op::ObsConnect),
        2 => Just(Op::ObsName),
        1 => Just(Op::ObsCut),
        1 => Just(Op::ObsGone),
    ]
}

/// The observer: `chat-client`'s resume logic on its current connection.
struct Observer {
    resume: Resume,
    /// The connection it reads, if any.
    conn: Option<ConnId>,
    /// Its name has been sent on this connection.
    named: bool,
    /// Connections used so far (names are obs1, obs2, ...).
    count: usize,
    /// Every public line it showed: (id, text), in order.
    seen: Vec<(u64, String)>,
    /// Lost-line notices: (i, ID, N) for "N lines after ID are no longer
    /// kept" shown right before `seen[i]`.
    lost: Vec<(usize, u64, u64)>,
    /// The client's status lines about missed lines.
    notes: Vec<String>,
}

/// Parses the server's "N line(s) after ID are no longer kept" notice
/// into (ID, N).
fn lost_notice(line: &str) -> Option<(u64, u64)> {
    let body = line.strip_prefix("[SERVER]: ")?;
    if !body.contains(" no longer kept") {
        return None;
    }
    let words: Vec<&str> = body.split(' ').collect();
    let after = words.iter().position(|w| *w == "after")?;
    Some((words.get(after + 1)?.parse().ok()?, words[0].parse().ok()?))
}

/// The last lost notice shown right before `seen[i]`: (ID, N).
fn notice_before(lost: &[(usize, u64, u64)], i: usize) -> Option<(u64, u64)> {
    lost.iter()
        .rev()
        .find(|(at, _, _)| *at == i)
        .map(|(_, since, n)| (*since, *n))
}

impl Observer {
    /// Feeds the lines the room sent to the observer's connection.
    fn read(&mut self, lines: Vec<String>) -> Result<(), TestCaseError> {
        for l in lines {
            let s = self.resume.line(&l);
            self.notes.extend(s.note.clone());
            if !s.show {
                continue;
            }
            let (id, skip) = split_id(&l);
            prop_assert_eq!(skip, s.skip);
            if let Some((since, n)) = lost_notice(&l) {
                self.lost.push((self.seen.len(), since, n));
            }
            if let Some(id) = id {
                self.seen.push((id, l[skip..].to_owned()));
            }
            // As the client's login does: its own join notice, never one
            // inside a history block.
            let name = format!("obs{}", self.count);
            if s.to_login && parse_join(&l[skip..]) == Some(name.as_str()) {
                if let Some(note) = self.resume.joined() {
                    self.notes.push(note);
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_resuming_client_sees_the_record_once_in_order(
        ops in prop::collection::vec(op(), 1..120),
        keep in prop::sample::select(&[0usize, 1, 3, 200][..]),
        join_history in prop::sample::select(&[0usize, 2, 20][..]),
        rate in prop::sample::select(&[0.0, 2.0][..]),
        announce_limit in prop::sample::select(&[0usize, 2][..]),
    ) {
        let config = RoomConfig {
            rate,
            announce_limit,
            join_history: join_history.min(keep),
            ..RoomConfig::default()
        };
        let mut room = Room::with_history(config, History::new(keep, 0));
        let mut out = Recorder::default();
        let mut now = Instant::now();
        let mut open = [false; USERS];
        let mut obs = Observer {
            resume: Resume::new(),
            conn: None,
            named: false,
            count: 0,
            seen: Vec::new(),
            lost: Vec::new(),
            notes: Vec::new(),
        };
        let ops = ops.into_iter().chain([Op::ObsGone, Op::ObsConnect, Op::ObsName]);
        for op in ops {
            match op {
                Op::Connect(i, name) if !open[i] => {
                    room.connect(i, &mut out);
                    room.line(i, name.as_bytes(), now, &mut out);
                    open[i] = true;
                }
                Op::Line(i, l) if open[i] => room.line(i, l.as_bytes(), now, &mut out),
                Op::Close(i, why) if open[i] => {
                    room.disconnect(i, why, &mut out);
                    open[i] = false;
                }
                Op::TimedOut(i) if open[i] => room.timed_out(i, &mut out),
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::ObsConnect if obs.conn.is_none() => {
                    obs.count += 1;
                    let conn = USERS + obs.count;
                    obs.conn = Some(conn);
                    obs.named = false;
                    room.connect(conn, &mut out);
                    for l in obs.resume.start("P").lines() {
                        room.line(conn, l.as_bytes(), now, &mut out);
                    }
                }
                Op::ObsName if !obs.named => {
                    if let Some(conn) = obs.conn {
                        let name = format!("obs{}", obs.count);
                        room.line(conn, name.as_bytes(), now, &mut out);
                        obs.named = true;
                    }
                }
                Op::ObsCut => {
                    // The old connection stays in the room until ObsGone
                    // (or never): its lines are not read.
                    obs.conn = None;
                }
                Op::ObsGone => {
                    // Every observer connection the server still holds.
                    for c in USERS + 1..=USERS + obs.count {
                        room.disconnect(c, Gone::Disconnected, &mut out);
                    }
                    obs.conn = None;
                }
                _ => {}
            }
            // Users hung up by the room (/quit, timeouts) are closed.
            for id in std::mem::take(&mut out.hung_up) {
                if id < USERS && open[id] {
                    room.disconnect(id, Gone::Disconnected, &mut out);
                    open[id] = false;
                }
            }
            let mine = match obs.conn {
                Some(c) => out.take(c),
                None => Vec::new(),
            };
            out.lines.clear();
            obs.read(mine)?;
        }

        // What the observer showed with an id is the record, in order, no
        // line twice; a gap is exactly what the lost notice right before it
        // announced (after the last id shown). Two reconnects without a
        // public line in between (a quiet join, nothing kept) both count
        // from the same id: the later notice counts.
        let record: std::collections::HashMap<u64, &String> =
            out.public.iter().map(|(id, l)| (*id, l)).collect();
        for (i, (id, text)) in obs.seen.iter().enumerate() {
            prop_assert_eq!(record.get(id).copied(), Some(text), "line {} as recorded", id);
            if i == 0 {
                continue;
            }
            let prev = obs.seen[i - 1].0;
            let lost = match notice_before(&obs.lost, i) {
                Some((since, n)) => {
                    prop_assert_eq!(since, prev, "resumed after the last line shown");
                    n
                }
                None => 0,
            };
            prop_assert_eq!(
                *id, prev + 1 + lost,
                "after {} the next line shown is {} ({} announced lost); seen {:?}",
                prev, id, lost, obs.seen
            );
        }
        // After the last resume the observer is level with the room: its
        // last line is the record's, or the lines after it were announced
        // lost.
        if let Some((last, _)) = obs.seen.last() {
            let tail = notice_before(&obs.lost, obs.seen.len()).map_or(0, |(_, n)| n);
            prop_assert_eq!(last + tail, out.last_id, "caught up; seen {:?}", obs.seen);
        }
    }
}
