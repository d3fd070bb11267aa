//! The room's rules, with no I/O: lines in, addressed lines out.
//!
//! [`Room`] knows every connection's session (waiting for a name, or chatting
//! under one), applies PROTOCOL.md sections 2 to 5, and hands every line it
//! produces to an [`Outbox`]. The event loop implements [`Outbox`] by
//! appending bytes to connection buffers; the unit tests implement it with a
//! recorder. A broadcast line is formatted once into a reused buffer and
//! handed to the outbox once, with the list of receivers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::text::{check_name, clean, decode, fold};

/// Identifies one connection; the event loop uses its slab key.
pub type ConnId = usize;

/// Where the room's output goes.
pub trait Outbox {
    /// Queue `line` (one whole line, LF included) for connection `to`.
    fn send(&mut self, to: ConnId, line: &[u8]);
    /// Queue the same `line` for every connection in `to`, in order. An
    /// outbox may store the bytes once and share them.
    fn broadcast(&mut self, to: &[ConnId], line: &[u8]) {
        for &id in to {
            self.send(id, line);
        }
    }
    /// Close `id` once what is queued for it has been written.
    fn hang_up(&mut self, id: ConnId);
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
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_line: 4096,
            idle_timeout: Duration::from_secs(120),
            login_timeout: Duration::from_secs(30),
            rate: 20.0,
            announce_limit: 1000,
        }
    }
}

/// One connection's state in the room.
#[derive(Debug)]
enum Session {
    /// Connected, asked for a name, not in the room yet.
    Login,
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
    /// Reused buffer a line is formatted into before it is sent.
    line: String,
}

/// The commands `/help` lists.
const HELP: &str = "Commands: /help | /who | /nick NEW | /msg NAME TEXT | /me TEXT | /ping [TOKEN] | /quit [REASON] (also !quit, {exit}). Start a line with // to send a line that begins with /.";

fn is_quit_alias(line: &str) -> bool {
    line.eq_ignore_ascii_case("!quit") || line.eq_ignore_ascii_case("{exit}")
}

fn rate_burst(rate: f64) -> f64 {
    rate * 2.0
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Room {
            config,
            sessions: Vec::new(),
            members: Vec::new(),
            names: HashMap::new(),
            line: String::with_capacity(256),
        }
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
        self.sessions[id] = Some(Session::Login);
        self.notice_to(id, out, format_args!("Welcome! Please enter your name:"));
    }

    /// A line arrived from `id` (without LF; CR already dropped).
    pub fn line(&mut self, id: ConnId, raw: &[u8], now: Instant, out: &mut impl Outbox) {
        let decoded = decode(raw);
        let line = decoded.trim();
        if line.is_empty() {
            return;
        }
        match self.sessions.get(id) {
            Some(Some(Session::Login)) => self.login_line(id, line, now, out),
            Some(Some(Session::Member(_))) => self.member_line(id, line, now, out),
            _ => {}
        }
    }

    /// A line from `id` passed `--max-line` and was dropped.
    pub fn line_too_long(&mut self, id: ConnId, out: &mut impl Outbox) {
        if self.has_session(id) {
            let max = self.config.max_line;
            self.notice_to(
                id,
                out,
                format_args!("Line too long (limit {max} bytes); it was not delivered."),
            );
        }
    }

    /// `id` was silent too long: before login the login timeout applies, after
    /// it the idle timeout. Sends the reason, closes, tells the others.
    pub fn timed_out(&mut self, id: ConnId, out: &mut impl Outbox) {
        match self.sessions.get(id) {
            Some(Some(Session::Login)) => {
                let secs = self.config.login_timeout.as_secs_f64();
                self.notice_to(
                    id,
                    out,
                    format_args!("No name chosen within {secs} s; closing the connection."),
                );
                self.sessions[id] = None;
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
                self.notice_leave(before, out, format_args!("{name} has disconnected."))
            }
            Gone::TooSlow => self.notice_leave(
                before,
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
            if word.eq_ignore_ascii_case("quit") {
                self.sessions[id] = None;
                out.hang_up(id);
            } else if word.eq_ignore_ascii_case("ping") {
                self.pong(id, rest, out);
            } else {
                self.notice_to(
                    id,
                    out,
                    format_args!("Please choose a name first (a name may not start with '/'):"),
                );
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
        self.names.insert(fold(&name), id);
        let slot = self.members.len();
        self.members.push(id);
        self.sessions[id] = Some(Session::Member(Member {
            name: name.clone(),
            slot,
            tokens: rate_burst(self.config.rate),
            refilled: now,
        }));
        log::info!("conn {id} logged in as {name}");
        let n = self.members.len();
        let s = if n == 1 { "" } else { "s" };
        self.notice_to(
            id,
            out,
            format_args!(
                "Welcome to the chat, {name}! {n} user{s} online. Type /help for the commands, /quit to leave."
            ),
        );
        if self.announces(n) {
            self.notice_all(out, format_args!("{name} joined the chat!"));
        } else {
            self.notice_to(id, out, format_args!("{name} joined the chat!"));
        }
    }

    /// Whether a join or leave is told to everyone in a room of `n` users
    /// (counting the one who joins or leaves): section 7.
    fn announces(&self, n: usize) -> bool {
        self.config.announce_limit == 0 || n <= self.config.announce_limit
    }

    /// Tells the others that a user left, if the room is small enough
    /// (`before`: users in the room with the leaver).
    fn notice_leave(
        &mut self,
        before: usize,
        out: &mut impl Outbox,
        args: std::fmt::Arguments<'_>,
    ) {
        if self.announces(before) {
            self.notice_all(out, args);
        }
    }

    /// Checks `name` against the name rules and the names in use; `mine` is
    /// the asker's own connection (a user may change the case of their name).
    fn name_free(&self, name: &str, mine: Option<ConnId>) -> Result<(), String> {
        check_name(name).map_err(|e| e.explain().to_owned())?;
        match self.names.get(&fold(name)) {
            Some(&holder) if Some(holder) != mine => Err(format!("the name {name} is taken")),
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
                "who" => self.who(id, out),
                "nick" => self.nick(id, rest, out),
                "msg" => self.msg(id, rest, now, out),
                "me" => self.me(id, rest, now, out),
                "ping" => self.pong(id, rest, out),
                "quit" => self.quit(id, rest, out),
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
        self.broadcast(out);
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
        self.broadcast(out);
    }

    fn msg(&mut self, id: ConnId, rest: &str, now: Instant, out: &mut impl Outbox) {
        let (target, text) = split_word(rest);
        let text = clean(text);
        if target.is_empty() || text.is_empty() {
            return self.notice_to(id, out, format_args!("Usage: /msg NAME TEXT"));
        }
        let Some(&to) = self.names.get(&fold(target)) else {
            let target = clean(target);
            return self.notice_to(id, out, format_args!("No user named {target} is online."));
        };
        if !self.allow(id, now, out) {
            return;
        }
        let from = self.member_name(id);
        let to_name = self.member_name(to);
        self.line.clear();
        let _ = writeln!(self.line, "[PM from {from}]: {text}");
        self.deliver(to, out);
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
        self.names.remove(&fold(&old));
        self.names.insert(fold(&new), id);
        if let Some(Some(Session::Member(m))) = self.sessions.get_mut(id) {
            m.name = new.clone();
        }
        log::info!("conn {id} renamed {old} -> {new}");
        self.notice_all(out, format_args!("{old} is now known as {new}."));
    }

    fn who(&mut self, id: ConnId, out: &mut impl Outbox) {
        let mut names: Vec<(String, &str)> = self
            .members
            .iter()
            .filter_map(|&m| match &self.sessions[m] {
                Some(Session::Member(m)) => Some((fold(&m.name), m.name.as_str())),
                _ => None,
            })
            .collect();
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
            self.notice_leave(before, out, format_args!("{name} left the chat."));
        } else {
            self.notice_leave(
                before,
                out,
                format_args!("{name} left the chat. ({reason})"),
            );
        }
    }

    /// Forgets `id`'s session; returns its name if it was in the room.
    fn remove(&mut self, id: ConnId) -> Option<String> {
        let session = self.sessions.get_mut(id)?.take()?;
        let Session::Member(m) = session else {
            return None;
        };
        self.names.remove(&fold(&m.name));
        self.members.swap_remove(m.slot);
        if let Some(&moved) = self.members.get(m.slot) {
            if let Some(Some(Session::Member(mm))) = self.sessions.get_mut(moved) {
                mm.slot = m.slot;
            }
        }
        Some(m.name)
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

    /// Sends `[SERVER]: ...` to everyone in the room.
    fn notice_all(&mut self, out: &mut impl Outbox, args: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = writeln!(self.line, "[SERVER]: {args}");
        self.broadcast(out);
    }

    /// Sends the formatted line to one connection.
    fn deliver(&mut self, id: ConnId, out: &mut impl Outbox) {
        out.send(id, self.line.as_bytes());
    }

    /// Sends the formatted line, as the same bytes, to every member.
    fn broadcast(&mut self, out: &mut impl Outbox) {
        out.broadcast(&self.members, self.line.as_bytes());
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
    /// Every line sent, with its receiver, LF removed.
    pub lines: Vec<(ConnId, String)>,
    /// Every hang-up, in order.
    pub hung_up: Vec<ConnId>,
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
    fn hang_up(&mut self, id: ConnId) {
        self.hung_up.push(id);
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
        assert_eq!(a[1], "[SERVER]: alice joined the chat!");
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
        assert_eq!(cy[1], "[SERVER]: cy joined the chat!");
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
