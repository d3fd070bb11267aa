//! The room's rules, with no I/O: lines in, addressed lines out.
//!
//! [`Room`] knows every connection's session (waiting for a name, or chatting
//! under one), applies PROTOCOL.md sections 2 to 8, and hands every line it
//! produces to an [`Outbox`]. The event loop implements [`Outbox`] by
//! appending bytes to connection buffers; the unit tests implement it with a
//! [`Recorder`]. A public line is formatted once into a reused buffer, gets
//! its id from the [`History`] (the room decides the order, so every
//! receiver sees the same id) and goes to the outbox once, with the list of
//! receivers; how it looks on each connection (`@ID ` or not, a TCP line or
//! a WebSocket frame) is the outbox's business.
//!
//! - [`history`]: the record of public lines, their ids and the ring of
//!   kept lines.
//! - [`cluster`]: the seam to the cluster (several servers, one room):
//!   what must be the same everywhere goes out as an ask and comes back,
//!   ordered, as a record every server applies the same way.

pub mod cluster;
pub mod history;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cluster::Claim;
pub use history::History;
use history::Since;

use crate::text::{check_name, clean, decode, fold};

/// Identifies one connection; the event loop uses its slab key.
pub type ConnId = usize;

/// Where the room's output goes.
pub trait Outbox {
    /// Queue `line` (one whole line, LF included) for connection `to` only.
    fn send(&mut self, to: ConnId, line: &[u8]);
    /// Queue public line `id` (LF included, without its id) for every
    /// connection in `to`, in order. Connections that asked for ids get
    /// `@ID ` before it (see [`with_id`]). An outbox may store the bytes
    /// once per encoding and share them.
    fn public(&mut self, to: &[ConnId], id: u64, line: &[u8]);
    /// From now on, show (or stop showing) ids on the public lines `conn`
    /// gets (`/ids on|off`).
    fn show_ids(&mut self, conn: ConnId, on: bool);
    /// Close `id` once what is queued for it has been written.
    fn hang_up(&mut self, id: ConnId);
}

/// Appends public line `id` as a connection with ids on sees it:
/// `@ID ` and the line (section 8).
pub fn with_id(id: u64, line: &[u8], out: &mut Vec<u8>) {
    let _ = std::io::Write::write_fmt(out, format_args!("@{id} "));
    out.extend_from_slice(line);
}

/// Why a session ended without `/quit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// EOF, a reset or another I/O error.
    Disconnected,
    /// Its output passed `--max-pending` because it did not read.
    TooSlow,
    /// The server closes it while shutting down.
    Shutdown,
}

/// The room's limits and timeouts (the ones its notices mention).
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// `--max-line`, quoted in the too-long notice.
    pub max_line: usize,
    /// `--idle-timeout`, quoted in the idle notice.
    pub idle_timeout: Duration,
    /// `--login-timeout`, quoted in the login-timeout notice.
    pub login_timeout: Duration,
    /// `--rate`: lines per second a user may sustain; 0 turns the limit off.
    pub rate: f64,
    /// `--announce-limit`: join and leave notices go to everyone only while
    /// the room holds at most this many users (the subject included); 0
    /// means always. Above it a mass reconnect would cost N x N lines.
    pub announce_limit: usize,
    /// `--join-history`: kept lines a newcomer gets before its join notice
    /// (at most `--history`).
    pub join_history: usize,
}

/// What the room has counted, for the log and `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Lines users sent that the room accepted (chat, `/me`, `/msg`).
    pub lines: u64,
    /// Lines refused by the rate limit.
    pub refused_rate: u64,
    /// Lines refused as longer than `--max-line`.
    pub refused_too_long: u64,
    /// Binary WebSocket messages refused.
    pub refused_binary: u64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_line: 4096,
            idle_timeout: Duration::from_secs(120),
            login_timeout: Duration::from_secs(30),
            rate: 20.0,
            announce_limit: 1000,
            join_history: 20,
        }
    }
}

/// One connection's state in the room.
#[derive(Debug)]
enum Session {
    /// Connected, asked for a name, not in the room yet; `/since ID` asked
    /// to resume after that id instead of the recent lines; in a cluster,
    /// the name being confirmed.
    Login {
        since: Option<u64>,
        claim: Option<Claim>,
    },
    /// In the room under a name.
    Member(Member),
}

/// A user who has chosen a name.
#[derive(Debug)]
struct Member {
    /// The name as the user typed it.
    name: String,
    /// Index of this user in [`Room::members`], for O(1) removal.
    slot: usize,
    /// Token bucket: lines that may still be sent right now.
    tokens: f64,
    /// When `tokens` was last topped up.
    refilled: Instant,
    /// In a cluster, the new name being confirmed.
    rename: Option<Claim>,
}

/// The chat room: every session, the name index and the rules.
pub struct Room {
    /// Limits and timeouts.
    config: RoomConfig,
    /// Session of every open connection, indexed by [`ConnId`].
    sessions: Vec<Option<Session>>,
    /// Connections in the room, in no particular order: broadcast targets.
    members: Vec<ConnId>,
    /// Case-folded name to the connection that holds it.
    names: HashMap<String, ConnId>,
    /// The record of public lines: ids and the kept lines.
    history: History,
    /// What the room counted.
    counters: Counters,
    /// In a cluster: the asks, the link, the other servers' users.
    cluster: Option<cluster::Side>,
    /// Reused buffer a line is formatted into before it is sent.
    line: String,
}

/// The commands `/help` lists.
const HELP: &str = "Commands: /help | /who | /nick NEW | /msg NAME TEXT | /me TEXT | /ping [TOKEN] | /history [N] | /ids on|off | /since ID (before the name) | /quit [REASON] (also !quit, {exit}). Start a line with // to send a line that begins with /.";

/// `/history` without a number.
const HISTORY_DEFAULT: usize = 20;

fn is_quit_alias(line: &str) -> bool {
    line.eq_ignore_ascii_case("!quit") || line.eq_ignore_ascii_case("{exit}")
}

fn rate_burst(rate: f64) -> f64 {
    rate * 2.0
}

impl Room {
    /// An empty room with an empty record keeping `--history` 200 lines.
    pub fn new(config: RoomConfig) -> Self {
        Self::with_history(config, History::new(200, 0))
    }

    /// An empty room around a record (restored from disk, or new).
    pub fn with_history(config: RoomConfig, history: History) -> Self {
        Room {
            config,
            sessions: Vec::new(),
            members: Vec::new(),
            names: HashMap::new(),
            history,
            counters: Counters::default(),
            cluster: None,
            line: String::with_capacity(256),
        }
    }

    /// An empty room that is one part of a cluster, as server `node`.
    pub fn with_cluster(config: RoomConfig, history: History, node: String) -> Self {
        let mut room = Self::with_history(config, history);
        room.cluster = Some(cluster::Side::new(node));
        room
    }

    /// The record of public lines.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The record, for the loop to take its journal.
    pub fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    /// What the room has counted so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Users in the room.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// True while `id` has a session (waiting for a name or in the room).
    pub fn has_session(&self, id: ConnId) -> bool {
        matches!(self.sessions.get(id), Some(Some(_)))
    }

    /// True once `id` has chosen a name.
    pub fn is_member(&self, id: ConnId) -> bool {
        matches!(self.sessions.get(id), Some(Some(Session::Member(_))))
    }

    /// The name `id` chats under, if any.
    pub fn name(&self, id: ConnId) -> Option<&str> {
        match self.sessions.get(id) {
            Some(Some(Session::Member(m))) => Some(&m.name),
            _ => None,
        }
    }

    /// A connection was accepted: greet it and wait for its name.
    pub fn connect(&mut self, id: ConnId, out: &mut impl Outbox) {
        if self.sessions.len() <= id {
            self.sessions.resize_with(id + 1, || None);
        }
        self.sessions[id] = Some(Session::Login {
            since: None,
            claim: None,
        });
        self.notice_to(id, out, format_args!("Welcome! Please enter your name:"));
    }

    /// A line arrived from `id` (without LF; CR already dropped).
    pub fn line(&mut self, id: ConnId, raw: &[u8], now: Instant, out: &mut impl Outbox) {
        let decoded = decode(raw);
        let line = decoded.trim();
        if line.is_empty() {
            return;
        }
        if self.busy(id) {
            return self.hold(id, raw, out);
        }
        match self.sessions.get(id) {
            Some(Some(Session::Login { .. })) => self.login_line(id, line, now, out),
            Some(Some(Session::Member(_))) => self.member_line(id, line, now, out),
            _ => {}
        }
    }

    /// A line from `id` passed `--max-line` and was dropped.
    pub fn line_too_long(&mut self, id: ConnId, out: &mut impl Outbox) {
        if self.has_session(id) {
            self.counters.refused_too_long += 1;
            let max = self.config.max_line;
            self.notice_to(
                id,
                out,
                format_args!("Line too long (limit {max} bytes); it was not delivered."),
            );
        }
    }

    /// A binary WebSocket message from `id` was dropped: tell the user.
    pub fn binary_refused(&mut self, id: ConnId, out: &mut impl Outbox) {
        if self.has_session(id) {
            self.counters.refused_binary += 1;
            self.notice_to(
                id,
                out,
                format_args!("Binary messages are not supported; send text. It was not delivered."),
            );
        }
    }

    /// `id` was silent too long: before login the login timeout applies, after
    /// it the idle timeout. Sends the reason, closes, tells the others.
    pub fn timed_out(&mut self, id: ConnId, out: &mut impl Outbox) {
        match self.sessions.get(id) {
            Some(Some(Session::Login { .. })) => {
                let secs = self.config.login_timeout.as_secs_f64();
                self.notice_to(
                    id,
                    out,
                    format_args!("No name chosen within {secs} s; closing the connection."),
                );
                self.remove(id);
                out.hang_up(id);
            }
            Some(Some(Session::Member(_))) => {
                let secs = self.config.idle_timeout.as_secs_f64();
                self.notice_to(
                    id,
                    out,
                    format_args!(
                        "Nothing received for {secs} s; closing the connection (timed out)."
                    ),
                );
                let before = self.members.len();
                if let Some(name) = self.remove(id) {
                    self.notice_leave(
                        before,
                        &name,
                        out,
                        format_args!("{name} has disconnected (timed out)."),
                    );
                }
                out.hang_up(id);
            }
            _ => {}
        }
    }

    /// `id`'s connection is gone (or being dropped): forget it and tell the
    /// others if it was in the room. Returns the name it had.
    pub fn disconnect(&mut self, id: ConnId, why: Gone, out: &mut impl Outbox) -> Option<String> {
        let before = self.members.len();
        let name = self.remove(id)?;
        match why {
            Gone::Disconnected => {
                self.notice_leave(before, &name, out, format_args!("{name} has disconnected."))
            }
            Gone::TooSlow => self.notice_leave(
                before,
                &name,
                out,
                format_args!("{name} has disconnected (too slow to read)."),
            ),
            Gone::Shutdown => {}
        }
        Some(name)
    }

    /// The server is shutting down: every connection gets a notice and is
    /// hung up.
    pub fn shutdown(&mut self, out: &mut impl Outbox) {
        for id in 0..self.sessions.len() {
            if self.sessions[id].is_some() {
                self.notice_to(
                    id,
                    out,
                    format_args!("The server is shutting down. Goodbye!"),
                );
                out.hang_up(id);
            }
        }
    }

    fn login_line(&mut self, id: ConnId, line: &str, now: Instant, out: &mut impl Outbox) {
        if let Some(cmd) = line.strip_prefix('/') {
            let (word, rest) = split_word(cmd);
            match word.to_ascii_lowercase().as_str() {
                "quit" => {
                    self.sessions[id] = None;
                    out.hang_up(id);
                }
                "ping" => self.pong(id, rest, out),
                "ids" => self.ids(id, rest, out),
                "since" => self.since(id, rest, out),
                _ => self.notice_to(
                    id,
                    out,
                    format_args!("Please choose a name first (a name may not start with '/'):"),
                ),
            }
            return;
        }
        if is_quit_alias(line) {
            self.sessions[id] = None;
            out.hang_up(id);
            return;
        }
        let name = clean(line);
        if name.is_empty() {
            return; // only control characters: an empty line, ignored (section 1)
        }
        if let Err(why) = self.name_free(&name, None) {
            self.notice_to(
                id,
                out,
                format_args!("Sorry, {why}. Please choose another name:"),
            );
            return;
        }
        let name = name.into_owned();
        if self.ask_join(id, &name, out) {
            return; // completes when the cluster's record arrives
        }
        self.complete_login(id, &name, now, out);
        if self.announces(self.members.len()) {
            self.notice_all(out, format_args!("{name} joined the chat!"));
        } else {
            self.notice_to(id, out, format_args!("{name} joined the chat!"));
        }
    }

    /// The newcomer's history (section 8): the lines after its `/since` id,
    /// or the last `--join-history` lines; nothing when there are none.
    fn catch_up(&mut self, id: ConnId, since: Option<u64>, out: &mut impl Outbox) {
        let (lost, from) = match since.map(|s| (s, self.history.since(s))) {
            Some((_, Since::After { lost, from })) => (lost, from),
            Some((asked, Since::Future)) => {
                let last = self.history.last_id();
                self.notice_to(
                    id,
                    out,
                    format_args!(
                        "There is no line {asked} in this room: its last line is {last} (its ids started over). Here are the recent lines."
                    ),
                );
                (0, self.recent_from(self.config.join_history))
            }
            None => (0, self.recent_from(self.config.join_history)),
        };
        if lost > 0 {
            let after = since.unwrap_or(0);
            let (s, are) = if lost == 1 { ("", "is") } else { ("s", "are") };
            let keeps = match self.history.keep() {
                0 => "this room keeps no history".to_owned(),
                n => format!("this room keeps its last {n}"),
            };
            self.notice_to(
                id,
                out,
                format_args!("{lost} line{s} after {after} {are} no longer kept ({keeps})."),
            );
        }
        if from < self.history.len() {
            self.replay(id, from, out);
        }
    }

    /// Ring index of the first of the last `n` kept lines.
    fn recent_from(&self, n: usize) -> usize {
        self.history.len().saturating_sub(n)
    }

    /// Sends `id` the kept lines from ring index `from` on, between the
    /// history notices.
    fn replay(&mut self, id: ConnId, from: usize, out: &mut impl Outbox) {
        let k = self.history.len() - from;
        let s = if k == 1 { "" } else { "s" };
        self.notice_to(id, out, format_args!("History ({k} line{s}):"));
        for (line_id, line) in self.history.from_index(from) {
            out.public(&[id], *line_id, line);
        }
        self.notice_to(id, out, format_args!("End of history."));
    }

    /// Whether a join or leave is told to everyone in a room of `n` users
    /// (counting the one who joins or leaves): section 7.
    fn announces(&self, n: usize) -> bool {
        self.config.announce_limit == 0 || n <= self.config.announce_limit
    }

    /// Tells the others that `name` left, if the room is small enough
    /// (`before`: users in the room with the leaver); in a cluster the
    /// cluster decides, with the whole room's count.
    fn notice_leave(
        &mut self,
        before: usize,
        name: &str,
        out: &mut impl Outbox,
        args: std::fmt::Arguments<'_>,
    ) {
        self.line.clear();
        let _ = writeln!(self.line, "[SERVER]: {args}");
        if !self.ask_leave(name) && self.announces(before) {
            self.publish(out);
        }
    }

    /// Checks `name` against the name rules and the names in use; `mine` is
    /// the asker's own connection (a user may change the case of their name).
    fn name_free(&self, name: &str, mine: Option<ConnId>) -> Result<(), String> {
        check_name(name).map_err(|e| e.explain().to_owned())?;
        let key = fold(name);
        match self.names.get(&key) {
            Some(&holder) if Some(holder) != mine => Err(format!("the name {name} is taken")),
            _ if self.remote(&key).is_some() => Err(format!("the name {name} is taken")),
            _ => Ok(()),
        }
    }

    fn member_line(&mut self, id: ConnId, line: &str, now: Instant, out: &mut impl Outbox) {
        if let Some(cmd) = line.strip_prefix('/') {
            if cmd.starts_with('/') {
                return self.chat(id, cmd, now, out);
            }
            let (word, rest) = split_word(cmd);
            match word.to_ascii_lowercase().as_str() {
                "help" => self.notice_to(id, out, format_args!("{HELP}")),
                "who" => self.who(id, now, out),
                "nick" => self.nick(id, rest, out),
                "msg" => self.msg(id, rest, now, out),
                "me" => self.me(id, rest, now, out),
                "ping" => self.pong(id, rest, out),
                "quit" => self.quit(id, rest, out),
                "history" => self.history_command(id, rest, now, out),
                "ids" => self.ids(id, rest, out),
                "since" => self.notice_to(
                    id,
                    out,
                    format_args!("/since only works before you choose a name; use /history N."),
                ),
                _ => {
                    let word = clean(word);
                    self.notice_to(
                        id,
                        out,
                        format_args!(
                            "Unknown command /{word}. Type /help for the list of commands."
                        ),
                    )
                }
            }
        } else if is_quit_alias(line) {
            self.quit(id, "", out)
        } else {
            self.chat(id, line, now, out)
        }
    }

    /// Takes one token from `id`'s bucket; on refusal tells the user.
    fn allow(&mut self, id: ConnId, now: Instant, out: &mut impl Outbox) -> bool {
        let rate = self.config.rate;
        if rate <= 0.0 {
            return true;
        }
        let Some(Some(Session::Member(m))) = self.sessions.get_mut(id) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(m.refilled).as_secs_f64();
        m.refilled = now.max(m.refilled);
        m.tokens = (m.tokens + elapsed * rate).min(rate_burst(rate));
        if m.tokens >= 1.0 {
            m.tokens -= 1.0;
            true
        } else {
            self.counters.refused_rate += 1;
            self.notice_to(
                id,
                out,
                format_args!(
                    "You are sending too fast (limit {rate} lines/s); that line was not delivered."
                ),
            );
            false
        }
    }

    fn chat(&mut self, id: ConnId, text: &str, now: Instant, out: &mut impl Outbox) {
        let text = clean(text);
        if text.is_empty() || !self.allow(id, now, out) {
            return;
        }
        let Some(Some(Session::Member(m))) = self.sessions.get(id) else {
            return;
        };
        self.line.clear();
        let _ = writeln!(self.line, "{}: {text}", m.name);
        self.say(id, out);
    }

    fn me(&mut self, id: ConnId, rest: &str, now: Instant, out: &mut impl Outbox) {
        let text = clean(rest);
        if text.is_empty() {
            return self.notice_to(id, out, format_args!("Usage: /me TEXT"));
        }
        if !self.allow(id, now, out) {
            return;
        }
        let Some(Some(Session::Member(m))) = self.sessions.get(id) else {
            return;
        };
        self.line.clear();
        let _ = writeln!(self.line, "* {} {text}", m.name);
        self.say(id, out);
    }

    fn msg(&mut self, id: ConnId, rest: &str, now: Instant, out: &mut impl Outbox) {
        let (target, text) = split_word(rest);
        let text = clean(text);
        if target.is_empty() || text.is_empty() {
            return self.notice_to(id, out, format_args!("Usage: /msg NAME TEXT"));
        }
        let key = fold(target);
        let to = self.names.get(&key).copied();
        let to_name = match (to, self.remote(&key)) {
            (Some(to), _) => self.member_name(to),
            (None, Some(r)) => r.name.clone(),
            (None, None) => {
                let target = clean(target);
                return self.notice_to(id, out, format_args!("No user named {target} is online."));
            }
        };
        if to.is_none() && self.cut_off() {
            return self.refuse_cut_off(id, out);
        }
        if !self.allow(id, now, out) {
            return;
        }
        self.counters.lines += 1;
        let from = self.member_name(id);
        self.line.clear();
        let _ = writeln!(self.line, "[PM from {from}]: {text}");
        match to {
            Some(to) => self.deliver(to, out),
            None => {
                self.ask_pm(&to_name);
            }
        }
        self.line.clear();
        let _ = writeln!(self.line, "[PM to {to_name}]: {text}");
        self.deliver(id, out);
    }

    fn nick(&mut self, id: ConnId, rest: &str, out: &mut impl Outbox) {
        let new = clean(rest);
        if new.is_empty() {
            return self.notice_to(id, out, format_args!("Usage: /nick NEW"));
        }
        let old = self.member_name(id);
        if *new == *old {
            return self.notice_to(id, out, format_args!("You are already known as {old}."));
        }
        if let Err(why) = self.name_free(&new, Some(id)) {
            return self.notice_to(id, out, format_args!("Sorry, {why}."));
        }
        let new = new.into_owned();
        if self.ask_rename(id, &old, &new, out) {
            return; // completes when the cluster's record arrives
        }
        self.rename_now(id, &old, &new);
        self.notice_all(out, format_args!("{old} is now known as {new}."));
    }

    /// Renames `id` from `old` to `new` (the new name is confirmed).
    fn rename_now(&mut self, id: ConnId, old: &str, new: &str) {
        self.names.remove(&fold(old));
        self.names.insert(fold(new), id);
        if let Some(Some(Session::Member(m))) = self.sessions.get_mut(id) {
            m.name = new.to_owned();
        }
        log::info!("conn {id} renamed {old} -> {new}");
    }

    fn who(&mut self, id: ConnId, now: Instant, out: &mut impl Outbox) {
        if !self.allow(id, now, out) {
            return;
        }
        let mut names: Vec<(String, &str)> = self
            .members
            .iter()
            .filter_map(|&m| match &self.sessions[m] {
                Some(Session::Member(m)) => Some((fold(&m.name), m.name.as_str())),
                _ => None,
            })
            .collect();
        if let Some(c) = &self.cluster {
            names.extend(c.remote.iter().map(|(k, r)| (k.clone(), r.name.as_str())));
        }
        names.sort_unstable();
        let mut line = String::with_capacity(32 + names.len() * 12);
        let n = names.len();
        let _ = write!(
            line,
            "[SERVER]: {n} user{} online: ",
            if n == 1 { "" } else { "s" }
        );
        for (i, (_, name)) in names.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(name);
        }
        line.push('\n');
        out.send(id, line.as_bytes());
    }

    /// `/history [N]`: the last N kept lines (default 20, at most
    /// `--history`), always framed; counts toward the rate.
    fn history_command(&mut self, id: ConnId, rest: &str, now: Instant, out: &mut impl Outbox) {
        let n = match rest.trim() {
            "" => HISTORY_DEFAULT,
            arg => match arg.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return self.notice_to(
                        id,
                        out,
                        format_args!("Usage: /history [N] (N a number of lines, 1 or more)"),
                    )
                }
            },
        };
        if !self.allow(id, now, out) {
            return;
        }
        let from = self.recent_from(n.min(self.history.keep()));
        self.replay(id, from, out);
    }

    /// `/ids on|off`: ids on this connection's public lines (before login
    /// too).
    fn ids(&mut self, id: ConnId, rest: &str, out: &mut impl Outbox) {
        let on = match rest.trim().to_ascii_lowercase().as_str() {
            "on" => true,
            "off" => false,
            _ => return self.notice_to(id, out, format_args!("Usage: /ids on|off")),
        };
        out.show_ids(id, on);
        if on {
            self.notice_to(
                id,
                out,
                format_args!("Ids on: public lines now start with @ID."),
            );
        } else {
            self.notice_to(id, out, format_args!("Ids off."));
        }
    }

    /// `/since ID` before login: resume after that id instead of the recent
    /// lines.
    fn since(&mut self, id: ConnId, rest: &str, out: &mut impl Outbox) {
        match rest.trim().parse::<u64>() {
            Ok(after) => {
                if let Some(Some(Session::Login { since, .. })) = self.sessions.get_mut(id) {
                    *since = Some(after);
                }
                self.notice_to(
                    id,
                    out,
                    format_args!("You will get the lines after {after} once you choose a name."),
                );
            }
            Err(_) => self.notice_to(id, out, format_args!("Usage: /since ID (a line's id)")),
        }
    }

    fn pong(&mut self, id: ConnId, token: &str, out: &mut impl Outbox) {
        let token = clean(token);
        self.line.clear();
        if token.is_empty() {
            self.line.push_str("/pong\n");
        } else {
            let _ = writeln!(self.line, "/pong {token}");
        }
        self.deliver(id, out);
    }

    fn quit(&mut self, id: ConnId, reason: &str, out: &mut impl Outbox) {
        let reason = clean(reason).into_owned();
        let name = self.member_name(id);
        self.notice_to(id, out, format_args!("Goodbye, {name}!"));
        out.hang_up(id);
        let before = self.members.len();
        self.remove(id);
        log::info!("conn {id} ({name}) quit");
        if reason.is_empty() {
            self.notice_leave(before, &name, out, format_args!("{name} left the chat."));
        } else {
            self.notice_leave(
                before,
                &name,
                out,
                format_args!("{name} left the chat. ({reason})"),
            );
        }
    }

    /// Forgets `id`'s session; returns its name if it was in the room.
    fn remove(&mut self, id: ConnId) -> Option<String> {
        let session = self.sessions.get_mut(id)?.take()?;
        let m = match session {
            Session::Member(m) => m,
            Session::Login { claim, .. } => {
                // A name being confirmed may already be the cluster's: give
                // it up (the cluster announces the leave after the join).
                if let Some(claim) = claim {
                    self.release_claim(id, &claim.name, true);
                }
                return None;
            }
        };
        if let Some(claim) = &m.rename {
            self.release_claim(id, &claim.name, false);
        }
        self.names.remove(&fold(&m.name));
        self.members.swap_remove(m.slot);
        if let Some(&moved) = self.members.get(m.slot) {
            if let Some(Some(Session::Member(mm))) = self.sessions.get_mut(moved) {
                mm.slot = m.slot;
            }
        }
        Some(m.name)
    }

    /// `id` left while the cluster was confirming `name` for it: give the
    /// name up if the cluster gave it (with a leave notice if `told`, since
    /// its join was told), and drop the lines it held.
    fn release_claim(&mut self, id: ConnId, name: &str, told: bool) {
        if let Some(c) = self.cluster.as_mut() {
            c.held.remove(&id);
            let line = if told {
                format!("[SERVER]: {name} has disconnected.\n").into_bytes()
            } else {
                Vec::new()
            };
            c.asks.push(cluster::Ask::Leave {
                name: name.to_owned(),
                line: line.into(),
            });
        }
    }

    /// `id`'s name (a clone: callers go on to borrow `self` mutably).
    fn member_name(&self, id: ConnId) -> String {
        self.name(id).unwrap_or_default().to_owned()
    }

    /// Sends `[SERVER]: ...` to one connection.
    fn notice_to(&mut self, id: ConnId, out: &mut impl Outbox, args: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = writeln!(self.line, "[SERVER]: {args}");
        self.deliver(id, out);
    }

    /// Sends `[SERVER]: ...` to everyone in the room, as a public line.
    fn notice_all(&mut self, out: &mut impl Outbox, args: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = writeln!(self.line, "[SERVER]: {args}");
        self.publish(out);
    }

    /// Sends the formatted line to one connection.
    fn deliver(&mut self, id: ConnId, out: &mut impl Outbox) {
        out.send(id, self.line.as_bytes());
    }

    /// A user's chat line or action (formatted): ordered by the cluster, or
    /// published here when alone.
    fn say(&mut self, id: ConnId, out: &mut impl Outbox) {
        if self.ask_publish(id, out).is_none() {
            self.counters.lines += 1;
            self.publish(out);
        } else if !self.cut_off() {
            self.counters.lines += 1;
        }
    }

    /// The formatted line is a public line: it gets the next id, is kept,
    /// and goes to every member. The room decides the order, so the id is
    /// given here (section 8).
    fn publish(&mut self, out: &mut impl Outbox) {
        let id = self.history.record(self.line.as_bytes());
        out.public(&self.members, id, self.line.as_bytes());
    }
}

/// Splits off the first word; the rest has its leading white space removed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// An [`Outbox`] that records everything, for tests.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every line sent, with its receiver, LF removed (public lines as the
    /// receiver sees them: with `@ID ` when it asked for ids).
    pub lines: Vec<(ConnId, String)>,
    /// Every hang-up, in order.
    pub hung_up: Vec<ConnId>,
    /// Every new public line, once, with its id (LF removed); replays of
    /// kept lines are not new.
    pub public: Vec<(u64, String)>,
    /// The highest public id seen.
    pub last_id: u64,
    /// Connections that asked for ids.
    pub ids_on: std::collections::HashSet<ConnId>,
}

impl Recorder {
    /// Takes the lines recorded so far for `id`.
    pub fn take(&mut self, id: ConnId) -> Vec<String> {
        let (mine, rest) = std::mem::take(&mut self.lines)
            .into_iter()
            .partition(|(to, _)| *to == id);
        self.lines = rest;
        mine.into_iter().map(|(_, l)| l).collect()
    }
}

impl Outbox for Recorder {
    fn send(&mut self, to: ConnId, line: &[u8]) {
        let s = String::from_utf8(line.to_vec()).expect("server lines are UTF-8");
        let s = s.strip_suffix('\n').expect("one whole line").to_owned();
        assert!(!s.contains('\n'), "one line per send");
        self.lines.push((to, s));
    }
    fn public(&mut self, to: &[ConnId], id: u64, line: &[u8]) {
        if id > self.last_id {
            self.last_id = id;
            let text = String::from_utf8_lossy(line);
            self.public
                .push((id, text.trim_end_matches('\n').to_owned()));
        }
        let mut tagged = Vec::new();
        with_id(id, line, &mut tagged);
        for &c in to {
            if self.ids_on.contains(&c) {
                self.send(c, &tagged);
            } else {
                self.send(c, line);
            }
        }
    }
    fn show_ids(&mut self, conn: ConnId, on: bool) {
        if on {
            self.ids_on.insert(conn);
        } else {
            self.ids_on.remove(&conn);
        }
    }
    fn hang_up(&mut self, id: ConnId) {
        self.hung_up.push(id);
        self.ids_on.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T {
        room: Room,
        out: Recorder,
        now: Instant,
    }

    impl T {
        fn new() -> Self {
            Self::with(RoomConfig::default())
        }
        fn with(config: RoomConfig) -> Self {
            T {
                room: Room::new(config),
                out: Recorder::default(),
                now: Instant::now(),
            }
        }
        fn join(&mut self, id: ConnId, name: &str) {
            self.room.connect(id, &mut self.out);
            self.say(id, name);
            assert!(self.room.is_member(id), "{name} did not get in");
            self.out.lines.clear();
        }
        fn say(&mut self, id: ConnId, line: &str) {
            self.room.line(id, line.as_bytes(), self.now, &mut self.out);
        }
        fn take(&mut self, id: ConnId) -> Vec<String> {
            self.out.take(id)
        }
    }

    #[test]
    fn greeting_name_welcome_join() {
        let mut t = T::new();
        t.room.connect(0, &mut t.out);
        assert!(t.take(0)[0].starts_with("[SERVER]: "));
        t.join(1, "bob");
        t.say(0, "alice");
        let a = t.take(0);
        assert!(a[0].contains("alice") && a[0].contains("/help") && a[0].contains("/quit"));
        // Then the room's history (bob's join), then her own join notice.
        assert_eq!(
            a[1..],
            [
                "[SERVER]: History (1 line):",
                "[SERVER]: bob joined the chat!",
                "[SERVER]: End of history.",
                "[SERVER]: alice joined the chat!"
            ]
        );
        assert_eq!(t.take(1), vec!["[SERVER]: alice joined the chat!"]);
    }

    #[test]
    fn bad_and_taken_names_ask_again() {
        let mut t = T::new();
        t.join(0, "Alice");
        t.room.connect(1, &mut t.out);
        t.take(1);
        for bad in ["a", "ALICE", "admin", "a b", "x:y"] {
            t.say(1, bad);
            let l = t.take(1);
            assert_eq!(l.len(), 1, "{bad}: {l:?}");
            assert!(l[0].starts_with("[SERVER]: Sorry"), "{l:?}");
            assert!(!t.room.is_member(1));
        }
        t.say(1, "alice2");
        assert!(t.room.is_member(1));
    }

    #[test]
    fn chat_goes_to_everyone_cleaned() {
        let mut t = T::new();
        t.join(0, "al");
        t.join(1, "bo");
        t.say(0, "  hi \x1b[2J there\x07 ");
        assert_eq!(t.take(0), vec!["al: hi [2J there"]);
        assert_eq!(t.take(1), vec!["al: hi [2J there"]);
        t.say(0, "\x07\x1b");
        t.say(0, "   ");
        assert!(t.out.lines.is_empty());
        t.say(1, "//etc/passwd");
        assert_eq!(t.take(0), vec!["bo: /etc/passwd"]);
    }

    #[test]
    fn commands() {
        let mut t = T::new();
        t.join(0, "zed");
        t.join(1, "Amy");
        t.join(2, "bob");
        t.say(0, "/WHO");
        assert_eq!(t.take(0), vec!["[SERVER]: 3 users online: Amy, bob, zed"]);
        t.say(0, "/ping abc");
        assert_eq!(t.take(0), vec!["/pong abc"]);
        t.say(0, "/ping");
        assert_eq!(t.take(0), vec!["/pong"]);
        assert!(t.out.lines.is_empty());
        t.say(0, "/me waves");
        assert_eq!(t.take(1), vec!["* zed waves"]);
        t.say(0, "/msg AMY psst");
        assert_eq!(t.take(1), vec!["[PM from zed]: psst"]);
        assert_eq!(t.take(0), vec!["* zed waves", "[PM to Amy]: psst"]);
        assert!(t.take(2).len() == 1); // only the /me
        t.say(0, "/msg nobody hi");
        assert!(t.take(0)[0].contains("nobody"));
        t.say(0, "/frob x");
        let l = t.take(0);
        assert!(l[0].contains("/frob") && l[0].contains("/help"), "{l:?}");
        t.say(0, "/nick bob");
        assert!(t.take(0)[0].contains("taken"));
        t.say(0, "/nick ZED");
        assert_eq!(t.take(1), vec!["[SERVER]: zed is now known as ZED."]);
        assert_eq!(t.take(0), vec!["[SERVER]: zed is now known as ZED."]);
        t.say(2, "/msg zed hi");
        assert_eq!(t.take(0), vec!["[PM from bob]: hi"]);
    }

    #[test]
    fn quit_and_aliases() {
        let mut t = T::new();
        t.join(0, "al");
        t.join(1, "bo");
        t.say(0, "/quit  bye \x07all ");
        assert_eq!(t.take(0), vec!["[SERVER]: Goodbye, al!"]);
        assert_eq!(t.take(1), vec!["[SERVER]: al left the chat. (bye all)"]);
        assert_eq!(t.out.hung_up, vec![0]);
        assert!(t.room.name_free("al", None).is_ok());
        t.join(2, "cy");
        t.say(2, "{EXIT}");
        assert_eq!(t.take(1), vec!["[SERVER]: cy left the chat."]);
        t.join(3, "di");
        t.say(3, "!quit");
        assert_eq!(t.take(1), vec!["[SERVER]: di left the chat."]);
        assert_eq!(t.room.member_count(), 1);
    }

    #[test]
    fn control_only_line_before_login_is_ignored() {
        let mut t = T::new();
        t.room.connect(0, &mut t.out);
        t.take(0);
        t.say(0, "\x07\x1b[");
        assert_eq!(t.take(0).len(), 1, "'[' is a (bad) name");
        t.say(0, "\x07\x1b\x00");
        assert!(t.take(0).is_empty(), "empty after cleaning: ignored");
        t.say(0, "al");
        assert!(t.room.is_member(0));
    }

    #[test]
    fn quit_before_login_is_quiet() {
        let mut t = T::new();
        t.join(0, "al");
        t.room.connect(1, &mut t.out);
        t.say(1, "/quit");
        assert_eq!(t.out.hung_up, vec![1]);
        assert!(t.take(0).is_empty());
    }

    #[test]
    fn disconnect_and_timeouts() {
        let mut t = T::new();
        t.join(0, "al");
        t.join(1, "bo");
        t.room.disconnect(1, Gone::Disconnected, &mut t.out);
        assert_eq!(t.take(0), vec!["[SERVER]: bo has disconnected."]);
        t.join(1, "bo");
        t.room.timed_out(1, &mut t.out);
        assert!(t.take(1)[0].contains("timed out"));
        assert_eq!(
            t.take(0),
            vec!["[SERVER]: bo has disconnected (timed out)."]
        );
        t.room.connect(2, &mut t.out);
        t.room.timed_out(2, &mut t.out);
        assert!(t.take(2).len() == 2);
        assert!(t.take(0).is_empty());
    }

    #[test]
    fn rate_limit_refuses_with_notice() {
        let mut t = T::with(RoomConfig {
            rate: 2.0,
            ..RoomConfig::default()
        });
        t.join(0, "al");
        t.join(1, "bo");
        for i in 0..6 {
            t.say(0, &format!("m{i}"));
        }
        let to_bo = t.take(1);
        assert_eq!(to_bo, vec!["al: m0", "al: m1", "al: m2", "al: m3"]);
        let to_al = t.take(0);
        assert_eq!(to_al.iter().filter(|l| l.contains("too fast")).count(), 2);
        t.say(0, "/who");
        assert_eq!(t.take(0).len(), 1);
        t.now += Duration::from_secs(1);
        t.say(0, "later");
        assert_eq!(t.take(1), vec!["al: later"]);
    }

    #[test]
    fn announce_limit_quiets_joins_and_leaves_above_it() {
        let mut t = T::with(RoomConfig {
            announce_limit: 2,
            ..RoomConfig::default()
        });
        t.join(0, "al");
        t.join(1, "bo");
        t.room.connect(2, &mut t.out);
        t.take(2);
        t.say(2, "cy");
        let cy = t.take(2);
        assert!(cy[0].contains("3 users online"), "{cy:?}");
        assert_eq!(cy.last().unwrap(), "[SERVER]: cy joined the chat!");
        assert!(
            t.out.lines.is_empty(),
            "join told to others: {:?}",
            t.out.lines
        );
        t.room.disconnect(2, Gone::Disconnected, &mut t.out);
        assert!(t.out.lines.is_empty());
        t.say(1, "/quit");
        assert_eq!(t.take(0), vec!["[SERVER]: bo left the chat."]);
    }

    #[test]
    fn removal_keeps_member_slots_consistent() {
        let mut t = T::new();
        for i in 0..5 {
            t.join(i, &format!("u{i}"));
        }
        t.room.disconnect(1, Gone::Disconnected, &mut t.out);
        t.room.disconnect(4, Gone::Disconnected, &mut t.out);
        t.room.disconnect(0, Gone::Disconnected, &mut t.out);
        t.out.lines.clear();
        t.say(2, "x");
        let mut got: Vec<ConnId> = t.out.lines.iter().map(|(id, _)| *id).collect();
        got.sort();
        assert_eq!(got, vec![2, 3]);
    }
}
