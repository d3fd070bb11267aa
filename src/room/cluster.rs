//! The room's side of the cluster seam (PROTOCOL.md section 10), with no I/O.
//!
//! Alone, the room decides and delivers at once. In a cluster the room still
//! decides (names, commands, rates, text), but what must be the same on every
//! server goes out as an [`Ask`] for the cluster driver (`crate::cluster`),
//! and comes back, ordered, as a [`Record`] that every server applies in the
//! same order: public lines with their ids, and the joins, leaves and renames
//! that change who is in the room. A login or a rename therefore completes
//! when its record arrives; lines the user sends meanwhile wait in the room.
//! The room keeps a copy of the names held on other servers (from the
//! records, and a full copy after every (re)connection), so `/who`, `/msg`
//! and the name checks need no round trip.

use std::collections::HashMap;
use std::time::Instant;

use super::{ConnId, Member, Outbox, Room, Session};
use crate::text::fold;

/// Lines a user may send while its name is being confirmed, before further
/// ones are refused.
const HELD_MAX: usize = 32;

/// What the room asks of the cluster (drained by the loop each turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Order a public line from `conn` (chat or action).
    Publish {
        /// The sender, told if the line is lost.
        conn: ConnId,
        /// Matches the record to this ask.
        tag: u64,
        /// The line, LF included.
        line: Box<[u8]>,
    },
    /// Claim `name` for `conn` (a login); `line` is its join notice, told to
    /// everyone if the room is small enough (section 7).
    Join {
        /// The connection logging in.
        conn: ConnId,
        /// Matches the record to this ask.
        tag: u64,
        /// The name as typed.
        name: String,
        /// The join notice, LF included.
        line: Box<[u8]>,
    },
    /// Give `name` up; `line` is the leave notice, told to everyone if the
    /// room is small enough.
    Leave {
        /// The name as it was shown.
        name: String,
        /// The leave notice, LF included.
        line: Box<[u8]>,
    },
    /// Rename `old` to `new` for `conn`; `line` is the notice, told to all.
    Rename {
        /// The connection renaming itself.
        conn: ConnId,
        /// Matches the record to this ask.
        tag: u64,
        /// The current name.
        old: String,
        /// The new name.
        new: String,
        /// The notice, LF included.
        line: Box<[u8]>,
    },
    /// A private message for a user on server `node`.
    Pm {
        /// The server the receiver is on.
        node: String,
        /// The receiver's name.
        to: String,
        /// The line the receiver gets, LF included.
        line: Box<[u8]>,
    },
}

/// What a record changes besides (or instead of) carrying a public line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Only a public line.
    Line,
    /// `name` joined on the record's origin server.
    Join(String),
    /// `name` left.
    Leave(String),
    /// `old` is now known as `new`.
    Rename(String, String),
}

/// One entry of the cluster's order, as every server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The public line's id; 0 for an entry without a line (a quiet join or
    /// leave in a large room).
    pub id: u64,
    /// The server the entry came from.
    pub origin: String,
    /// The connection on the origin server it concerns (0 if none).
    pub conn: u64,
    /// The origin's tag of the ask (0 if none).
    pub tag: u64,
    /// The change it makes.
    pub event: Event,
    /// The public line, LF included; empty without one.
    pub line: Box<[u8]>,
}

/// A user on another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The name as shown.
    pub name: String,
    /// The server it is on.
    pub node: String,
}

/// The room's cluster state.
#[derive(Debug)]
pub struct Side {
    /// This server's id in the cluster.
    pub(super) node: String,
    /// Whether the link to the cluster is up: while it is down, nothing is
    /// delivered that other servers cannot see.
    pub(super) up: bool,
    /// Asks not yet taken by the driver.
    pub(super) asks: Vec<Ask>,
    /// Users on other servers, by folded name.
    pub(super) remote: HashMap<String, Remote>,
    /// Lines sent by connections whose name is being confirmed.
    pub(super) held: HashMap<ConnId, Vec<Box<[u8]>>>,
    /// The last tag given to an ask.
    pub(super) tag: u64,
}

/// A name being confirmed (login or rename): the name and its ask's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The name asked for.
    pub name: String,
    /// The ask's tag.
    pub tag: u64,
}

impl Side {
    /// A side for server `node`, link up.
    pub fn new(node: String) -> Self {
        Side {
            node,
            up: true,
            asks: Vec::new(),
            remote: HashMap::new(),
            held: HashMap::new(),
            tag: 0,
        }
    }

    fn next_tag(&mut self) -> u64 {
        self.tag += 1;
        self.tag
    }
}

impl Room {
    /// This server's id, in a cluster.
    pub fn node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node.as_str())
    }

    /// The asks made since the last call, for the cluster driver.
    pub fn take_asks(&mut self) -> Vec<Ask> {
        self.cluster
            .as_mut()
            .map(|c| std::mem::take(&mut c.asks))
            .unwrap_or_default()
    }

    /// Names of the users on this server (as shown), for a resync.
    pub fn local_names(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|&m| self.name(m).map(str::to_owned))
            .collect()
    }

    /// Replaces the copy of the other servers' users (after a (re)connect).
    pub fn set_remote(&mut self, users: impl IntoIterator<Item = Remote>) {
        if let Some(c) = self.cluster.as_mut() {
            let node = c.node.clone();
            c.remote = users
                .into_iter()
                .filter(|r| r.node != node)
                .map(|r| (fold(&r.name), r))
                .collect();
        }
    }

    /// Users in the whole room (this server and the others).
    pub fn user_count(&self) -> usize {
        self.members.len() + self.cluster.as_ref().map_or(0, |c| c.remote.len())
    }

    /// True while `id`'s name is being confirmed: its lines wait.
    pub fn busy(&self, id: ConnId) -> bool {
        match self.sessions.get(id) {
            Some(Some(Session::Login { claim, .. })) => claim.is_some(),
            Some(Some(Session::Member(m))) => m.rename.is_some(),
            _ => false,
        }
    }

    /// Keeps a line from a connection whose name is being confirmed; it is
    /// handled once the name is. A few are kept; more are refused.
    pub(super) fn hold(&mut self, id: ConnId, raw: &[u8], out: &mut impl Outbox) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let held = c.held.entry(id).or_default();
        if held.len() < HELD_MAX {
            held.push(raw.into());
        } else {
            self.notice_to(
                id,
                out,
                format_args!(
                    "Please wait until your name is confirmed; that line was not delivered."
                ),
            );
        }
    }

    /// Handles the lines `id` sent while its name was being confirmed.
    fn release(&mut self, id: ConnId, now: Instant, out: &mut impl Outbox) {
        let held = self
            .cluster
            .as_mut()
            .and_then(|c| c.held.remove(&id))
            .unwrap_or_default();
        for line in held {
            self.line(id, &line, now, out);
        }
    }

    /// True while the link is down (lines that need the cluster are refused).
    pub(super) fn cut_off(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| !c.up)
    }

    /// The held name on another server, if any.
    pub(super) fn remote(&self, folded: &str) -> Option<&Remote> {
        self.cluster.as_ref().and_then(|c| c.remote.get(folded))
    }

    /// In a cluster: asks for a public line to be ordered (or refuses it
    /// while the link is down). Alone: `None`, the caller publishes.
    pub(super) fn ask_publish(&mut self, id: ConnId, out: &mut impl Outbox) -> Option<()> {
        let c = self.cluster.as_mut()?;
        if !c.up {
            self.refuse_cut_off(id, out);
            return Some(());
        }
        let tag = c.next_tag();
        c.asks.push(Ask::Publish {
            conn: id,
            tag,
            line: self.line.as_bytes().into(),
        });
        Some(())
    }

    /// In a cluster: asks to claim `name` for `id`; the login completes when
    /// its record arrives. Returns false when alone.
    pub(super) fn ask_join(&mut self, id: ConnId, name: &str, out: &mut impl Outbox) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        if !c.up {
            self.notice_to(
                id,
                out,
                format_args!("The chat is reconnecting to its cluster; please send your name again in a moment:"),
            );
            return true;
        }
        let tag = c.next_tag();
        let line = format!("[SERVER]: {name} joined the chat!\n").into_bytes();
        c.asks.push(Ask::Join {
            conn: id,
            tag,
            name: name.to_owned(),
            line: line.into(),
        });
        if let Some(Some(Session::Login { claim, .. })) = self.sessions.get_mut(id) {
            *claim = Some(Claim {
                name: name.to_owned(),
                tag,
            });
        }
        true
    }

    /// In a cluster: asks to rename `id` from `old` to `new`. Returns false
    /// when alone.
    pub(super) fn ask_rename(
        &mut self,
        id: ConnId,
        old: &str,
        new: &str,
        out: &mut impl Outbox,
    ) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        if !c.up {
            self.refuse_cut_off(id, out);
            return true;
        }
        let tag = c.next_tag();
        let line = format!("[SERVER]: {old} is now known as {new}.\n").into_bytes();
        c.asks.push(Ask::Rename {
            conn: id,
            tag,
            old: old.to_owned(),
            new: new.to_owned(),
            line: line.into(),
        });
        if let Some(Some(Session::Member(m))) = self.sessions.get_mut(id) {
            m.rename = Some(Claim {
                name: new.to_owned(),
                tag,
            });
        }
        true
    }

    /// In a cluster: gives `name` up, with its leave notice (the formatted
    /// line). Returns false when alone.
    pub(super) fn ask_leave(&mut self, name: &str) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        c.asks.push(Ask::Leave {
            name: name.to_owned(),
            line: self.line.as_bytes().into(),
        });
        true
    }

    /// In a cluster: a private message to a user on another server (the
    /// formatted line is what the receiver gets). Returns false when the
    /// receiver is not remote.
    pub(super) fn ask_pm(&mut self, to: &str) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        let Some(r) = c.remote.get(&fold(to)) else {
            return false;
        };
        c.asks.push(Ask::Pm {
            node: r.node.clone(),
            to: r.name.clone(),
            line: self.line.as_bytes().into(),
        });
        true
    }

    /// Tells `id` that what it sent needs the cluster, whose link is down.
    pub(super) fn refuse_cut_off(&mut self, id: ConnId, out: &mut impl Outbox) {
        self.notice_to(
            id,
            out,
            format_args!(
                "The link to the cluster is down; that was not delivered. Please try again in a moment."
            ),
        );
    }

    /// The link to the cluster went down (`up` false) or came back: tells
    /// every connection. Logins and renames that were waiting are told to
    /// try again.
    pub fn link(&mut self, up: bool, now: Instant, out: &mut impl Outbox) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.up == up {
            return;
        }
        c.up = up;
        let waiting: Vec<ConnId> = c.held.keys().copied().collect();
        for id in 0..self.sessions.len() {
            let claim = match self.sessions[id].as_mut() {
                Some(Session::Login { claim, .. }) => claim.take(),
                Some(Session::Member(m)) => m.rename.take(),
                None => continue,
            };
            if up {
                self.notice_to(
                    id,
                    out,
                    format_args!("The link to the cluster is back; lines are delivered again."),
                );
            } else {
                self.notice_to(
                    id,
                    out,
                    format_args!("The link to the cluster is lost; lines are not delivered until it is back."),
                );
            }
            if let Some(claim) = claim {
                let what = if self.is_member(id) {
                    "Your rename to"
                } else {
                    "Your name"
                };
                self.notice_to(
                    id,
                    out,
                    format_args!("{what} {} was not confirmed; please try again.", claim.name),
                );
            }
        }
        for id in waiting {
            self.release(id, now, out);
        }
    }

    /// Applies one record of the cluster's order: who joined, left or was
    /// renamed, then its public line to every member here.
    pub fn apply(&mut self, rec: &Record, now: Instant, out: &mut impl Outbox) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let ours = rec.origin == c.node;
        match &rec.event {
            Event::Line => {}
            Event::Join(name) if ours => {
                let id = rec.conn as ConnId;
                let pending = matches!(
                    self.sessions.get(id),
                    Some(Some(Session::Login { claim: Some(cl), .. })) if cl.tag == rec.tag
                );
                if pending {
                    self.complete_login(id, name, now, out);
                    if rec.id == 0 {
                        self.notice_to(id, out, format_args!("{name} joined the chat!"));
                    }
                }
            }
            Event::Join(name) => {
                c.remote.insert(
                    fold(name),
                    Remote {
                        name: name.clone(),
                        node: rec.origin.clone(),
                    },
                );
            }
            Event::Leave(name) => {
                let key = fold(name);
                if c.remote.get(&key).is_some_and(|r| r.node == rec.origin) {
                    c.remote.remove(&key);
                }
            }
            Event::Rename(old, new) if ours => {
                let id = rec.conn as ConnId;
                let pending = matches!(
                    self.sessions.get(id),
                    Some(Some(Session::Member(m))) if m.rename.as_ref().is_some_and(|r| r.tag == rec.tag)
                );
                if pending {
                    self.rename_now(id, old, new);
                    if let Some(Some(Session::Member(m))) = self.sessions.get_mut(id) {
                        m.rename = None;
                    }
                }
            }
            Event::Rename(old, new) => {
                c.remote.remove(&fold(old));
                c.remote.insert(
                    fold(new),
                    Remote {
                        name: new.clone(),
                        node: rec.origin.clone(),
                    },
                );
            }
        }
        if rec.id != 0 && !rec.line.is_empty() {
            self.history.record_as(rec.id, &rec.line);
            out.public(&self.members, rec.id, &rec.line);
        }
        if ours && matches!(rec.event, Event::Join(_) | Event::Rename(..)) {
            self.release(rec.conn as ConnId, now, out);
        }
    }

    /// The cluster refused `id`'s name (taken on another server).
    pub fn claim_refused(&mut self, id: ConnId, tag: u64, now: Instant, out: &mut impl Outbox) {
        let name = match self.sessions.get_mut(id) {
            Some(Some(Session::Login { claim, .. }))
                if claim.as_ref().is_some_and(|c| c.tag == tag) =>
            {
                claim.take().map(|c| c.name)
            }
            Some(Some(Session::Member(m))) if m.rename.as_ref().is_some_and(|c| c.tag == tag) => {
                m.rename.take().map(|c| c.name)
            }
            _ => None,
        };
        let Some(name) = name else {
            return;
        };
        if self.is_member(id) {
            self.notice_to(id, out, format_args!("Sorry, the name {name} is taken."));
        } else {
            self.notice_to(
                id,
                out,
                format_args!("Sorry, the name {name} is taken. Please choose another name:"),
            );
        }
        self.release(id, now, out);
    }

    /// A public line of `id`'s was never ordered (the link was lost before
    /// the cluster took it): the sender is told, so nothing is lost silently.
    pub fn not_delivered(&mut self, id: ConnId, out: &mut impl Outbox) {
        if self.is_member(id) {
            self.notice_to(
                id,
                out,
                format_args!("One of your lines was not delivered (the link to the cluster was lost); please send it again."),
            );
        }
    }

    /// Another server took `name` while this one was cut off from the
    /// cluster: its user here cannot keep it, and is asked to log in again.
    pub fn name_lost(&mut self, name: &str, out: &mut impl Outbox) {
        let Some(&id) = self.names.get(&fold(name)) else {
            return;
        };
        self.notice_to(
            id,
            out,
            format_args!("Another user took the name {name} while this server was cut off from the cluster; please log in again."),
        );
        self.remove(id);
        out.hang_up(id);
    }

    /// Lines the cluster no longer had when this server caught up (its
    /// link was down too long): every user here is told how many.
    pub fn lines_lost(&mut self, n: u64, out: &mut impl Outbox) {
        let s = if n == 1 { " was" } else { "s were" };
        for i in 0..self.members.len() {
            let id = self.members[i];
            self.notice_to(
                id,
                out,
                format_args!("{n} line{s} lost while the link to the cluster was down."),
            );
        }
    }

    /// A private message from another server for the user named `to` here.
    pub fn pm_in(&mut self, to: &str, line: &[u8], out: &mut impl Outbox) {
        if let Some(&id) = self.names.get(&fold(to)) {
            out.send(id, line);
        }
    }

    /// Logs `id` in as `name` (the name is confirmed): welcome, history,
    /// and (when the room is small enough) the join notice that follows.
    pub(super) fn complete_login(
        &mut self,
        id: ConnId,
        name: &str,
        now: Instant,
        out: &mut impl Outbox,
    ) {
        let since = match self.sessions.get(id) {
            Some(Some(Session::Login { since, .. })) => *since,
            _ => return,
        };
        self.names.insert(fold(name), id);
        let slot = self.members.len();
        self.members.push(id);
        self.sessions[id] = Some(Session::Member(Member {
            name: name.to_owned(),
            slot,
            tokens: super::rate_burst(self.config.rate),
            refilled: now,
            rename: None,
        }));
        log::info!("conn {id} logged in as {name}");
        let n = self.user_count();
        let s = if n == 1 { "" } else { "s" };
        self.notice_to(
            id,
            out,
            format_args!(
                "Welcome to the chat, {name}! {n} user{s} online. Type /help for the commands, /quit to leave."
            ),
        );
        self.catch_up(id, since, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{History, Recorder, RoomConfig};

    /// Two servers' rooms and an in-memory stand-in for the Lua scripts'
    /// rules (ids, names, announce limit), to test the room's side of the
    /// seam without Redis; the real scripts are tested against a real
    /// redis-server in tests/cluster*.rs.
    struct Pair {
        rooms: [Room; 2],
        outs: [Recorder; 2],
        names: HashMap<String, (usize, String)>,
        id: u64,
        now: Instant,
        limit: usize,
    }

    impl Pair {
        fn new(limit: usize) -> Self {
            let config = RoomConfig {
                announce_limit: limit,
                ..RoomConfig::default()
            };
            let mk = |n: &str| Room::with_cluster(config.clone(), History::new(50, 0), n.into());
            Pair {
                rooms: [mk("n0"), mk("n1")],
                outs: [Recorder::default(), Recorder::default()],
                names: HashMap::new(),
                id: 0,
                now: Instant::now(),
                limit,
            }
        }

        /// Runs every ask to completion, as Redis would, and applies the
        /// records on both servers, in one order.
        fn settle(&mut self) {
            loop {
                let mut records = Vec::new();
                for s in 0..2 {
                    for ask in self.rooms[s].take_asks() {
                        self.order(s, ask, &mut records);
                    }
                }
                if records.is_empty() {
                    return;
                }
                for rec in &records {
                    for s in 0..2 {
                        self.rooms[s].apply(rec, self.now, &mut self.outs[s]);
                    }
                }
            }
        }

        fn record(
            &mut self,
            s: usize,
            conn: u64,
            tag: u64,
            event: Event,
            line: Option<&[u8]>,
        ) -> Record {
            let id = line.map_or(0, |_| {
                self.id += 1;
                self.id
            });
            Record {
                id,
                origin: format!("n{s}"),
                conn,
                tag,
                event,
                line: line.unwrap_or_default().into(),
            }
        }

        fn order(&mut self, s: usize, ask: Ask, records: &mut Vec<Record>) {
            let limit = self.limit;
            match ask {
                Ask::Publish { conn, tag, line } => {
                    records.push(self.record(s, conn as u64, tag, Event::Line, Some(&line)))
                }
                Ask::Join {
                    conn,
                    tag,
                    name,
                    line,
                } => {
                    let f = fold(&name);
                    if self.names.contains_key(&f) {
                        self.rooms[s].claim_refused(conn, tag, self.now, &mut self.outs[s]);
                        return;
                    }
                    self.names.insert(f, (s, name.clone()));
                    let told = self.names.len() <= limit;
                    let line = told.then_some(&line[..]);
                    records.push(self.record(s, conn as u64, tag, Event::Join(name), line));
                }
                Ask::Leave { name, line } => {
                    let n = self.names.len();
                    if self.names.remove(&fold(&name)).is_some() {
                        let line = (!line.is_empty() && n <= limit).then_some(&line[..]);
                        records.push(self.record(s, 0, 0, Event::Leave(name), line));
                    }
                }
                Ask::Rename {
                    conn,
                    tag,
                    old,
                    new,
                    line,
                } => {
                    if fold(&old) != fold(&new) && self.names.contains_key(&fold(&new)) {
                        self.rooms[s].claim_refused(conn, tag, self.now, &mut self.outs[s]);
                        return;
                    }
                    self.names.remove(&fold(&old));
                    self.names.insert(fold(&new), (s, new.clone()));
                    records.push(self.record(
                        s,
                        conn as u64,
                        tag,
                        Event::Rename(old, new),
                        Some(&line),
                    ));
                }
                Ask::Pm { node, to, line } => {
                    let t: usize = node[1..].parse().unwrap();
                    self.rooms[t].pm_in(&to, &line, &mut self.outs[t]);
                }
            }
        }

        fn say(&mut self, s: usize, id: ConnId, line: &str) {
            self.rooms[s].line(id, line.as_bytes(), self.now, &mut self.outs[s]);
        }

        fn join(&mut self, s: usize, id: ConnId, name: &str) {
            self.rooms[s].connect(id, &mut self.outs[s]);
            self.say(s, id, name);
            self.settle();
        }

        fn take(&mut self, s: usize, id: ConnId) -> Vec<String> {
            self.outs[s].take(id)
        }
    }

    #[test]
    fn a_login_completes_when_its_record_arrives_and_lines_wait_meanwhile() {
        let mut p = Pair::new(100);
        p.rooms[0].connect(0, &mut p.outs[0]);
        p.say(0, 0, "alice");
        p.say(0, 0, "hello");
        assert!(!p.rooms[0].is_member(0) && p.rooms[0].busy(0));
        p.settle();
        let got = p.take(0, 0);
        assert!(
            got[1].starts_with("[SERVER]: Welcome to the chat, alice! 1 user online"),
            "{got:?}"
        );
        assert_eq!(
            got[2..],
            ["[SERVER]: alice joined the chat!", "alice: hello"]
        );
    }

    #[test]
    fn names_are_unique_across_servers_and_who_and_msg_reach_them() {
        let mut p = Pair::new(100);
        p.join(0, 0, "alice");
        p.join(1, 0, "bob");
        p.rooms[1].connect(1, &mut p.outs[1]);
        p.say(1, 1, "ALICE");
        p.settle();
        let got = p.take(1, 1);
        assert!(
            got.iter().any(|l| l.contains("the name ALICE is taken")),
            "{got:?}"
        );
        assert!(!p.rooms[1].is_member(1));
        p.take(0, 0);
        p.take(1, 0);
        p.say(1, 0, "/who");
        assert_eq!(p.take(1, 0), ["[SERVER]: 2 users online: alice, bob"]);
        p.say(1, 0, "/msg Alice psst");
        p.settle();
        assert_eq!(p.take(1, 0), ["[PM to alice]: psst"]);
        assert_eq!(p.take(0, 0), ["[PM from bob]: psst"]);
    }

    #[test]
    fn every_server_sees_the_same_ids_and_history() {
        let mut p = Pair::new(100);
        p.join(0, 0, "alice");
        p.join(1, 0, "bob");
        p.say(0, 0, "one");
        p.say(1, 0, "two");
        p.settle();
        let a: Vec<_> = p.rooms[0]
            .history()
            .last(10)
            .map(|(i, l)| (*i, l.clone()))
            .collect();
        let b: Vec<_> = p.rooms[1]
            .history()
            .last(10)
            .map(|(i, l)| (*i, l.clone()))
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 4); // two joins, two lines
    }

    #[test]
    fn above_the_limit_joins_are_quiet_and_leaves_go_through_the_cluster() {
        let mut p = Pair::new(2);
        p.join(0, 0, "u1");
        p.join(1, 0, "u2");
        p.take(0, 0);
        p.take(1, 0);
        p.join(1, 1, "u3");
        let mine = p.take(1, 1);
        assert_eq!(mine.last().unwrap(), "[SERVER]: u3 joined the chat!");
        assert!(
            p.take(0, 0).is_empty(),
            "a quiet join reached another server"
        );
        p.say(1, 1, "/who");
        assert!(p.take(1, 1)[0].starts_with("[SERVER]: 3 users online"));
        p.rooms[1].disconnect(1, crate::room::Gone::Disconnected, &mut p.outs[1]);
        p.settle();
        assert!(p.take(0, 0).is_empty(), "a leave in a room of 3 was told");
        p.say(0, 0, "/quit");
        p.settle();
        assert_eq!(p.take(1, 0), ["[SERVER]: u1 left the chat."]);
    }

    #[test]
    fn while_the_link_is_down_public_lines_and_logins_are_refused_with_a_notice() {
        let mut p = Pair::new(100);
        p.join(0, 0, "alice");
        p.take(0, 0);
        p.rooms[0].link(false, p.now, &mut p.outs[0]);
        p.say(0, 0, "lost?");
        p.rooms[0].connect(1, &mut p.outs[0]);
        p.say(0, 1, "bob");
        assert!(p.rooms[0].take_asks().is_empty());
        let got = p.take(0, 0);
        assert!(got[0].contains("link to the cluster is lost"), "{got:?}");
        assert!(got[1].contains("was not delivered"), "{got:?}");
        assert!(p
            .take(0, 1)
            .iter()
            .any(|l| l.contains("send your name again")));
        p.rooms[0].link(true, p.now, &mut p.outs[0]);
        assert!(p.take(0, 0)[0].contains("link to the cluster is back"));
    }
}
