//! Resuming without loss (PROTOCOL.md sections 6 and 8), as plain code:
//! server lines in, what to show and what to tell the user out
//! ([`Resume`]).
//!
//! At every connection the client sends `/ids on` (and, once it has seen a
//! public line, `/since LAST`) before its name, followed by a `/ping TOKEN`
//! barrier; the server's answers to these, which the user did not type, are
//! hidden up to the barrier's `/pong`. The greeting, which the server sends
//! before it reads anything, is the one line shown meanwhile.
//!
//! Public lines then start with `@ID ` (only a line that starts with `@`,
//! digits and a space has an id: no name can contain `@`). The id is
//! stripped before the line is shown and remembered, so the next connection
//! can ask for the lines after it. Ids of the lines a user asks for with
//! `/history` are not remembered: they are old lines.
//!
//! What the user sees of a history block before the join notice:
//! - **first connection**: the block as the server sends it, framing
//!   included (`History (K lines):` ... `End of history.`): those are
//!   earlier lines the user never saw, and the framing says so;
//! - **reconnect**: the missed lines only, without the framing, so the
//!   conversation reads on as if the connection had never dropped (a piped
//!   transcript has each line once, in order, and nothing else in
//!   between), and one status line says how many lines were missed and how
//!   many of them the server no longer kept. The server's own notice about
//!   lost lines (or about its ids having started over) is shown as it
//!   comes: it marks the gap where it is.

use std::fmt::Write as _;

/// The framing line that opens a history block.
const BLOCK_START: &str = "[SERVER]: History (";
/// The framing line that closes a history block.
const BLOCK_END: &str = "[SERVER]: End of history.";

/// Splits a line into its id and the bytes of the line without `@ID `:
/// `(Some(id), n)` where the line shown starts at byte `n`.
pub fn split_id(line: &str) -> (Option<u64>, usize) {
    let Some(rest) = line.strip_prefix('@') else {
        return (None, 0);
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || rest.as_bytes().get(digits) != Some(&b' ') {
        return (None, 0);
    }
    match rest[..digits].parse() {
        Ok(id) => (Some(id), 1 + digits + 1),
        Err(_) => (None, 0),
    }
}

/// What to do with one server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Show the line (from byte [`Seen::skip`] on).
    pub show: bool,
    /// Bytes of `@ID ` to leave out when showing it.
    pub skip: usize,
    /// Give the line (without its id) to the login, which looks for the
    /// greeting and the join notice: not a line of a history block.
    pub to_login: bool,
    /// Tell the user this (one status line).
    pub note: Option<String>,
}

/// Where a connection stands, as far as ids go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    /// Not in a history block.
    Outside,
    /// In the block that comes before the join notice.
    Login,
    /// In a block the user asked for (`/history`).
    Asked,
}

/// Ids across connections, and one connection's view of them.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The id of the last public line shown live or as a missed line;
    /// `None` until one came.
    last: Option<u64>,
    /// Barriers sent so far (one per connection).
    count: u32,
    /// Token of this connection's barrier while its answer is awaited.
    barrier: Option<String>,
    /// Lines received on this connection.
    received: u64,
    /// The id this connection asked to resume after (`/since`), if any.
    since: Option<u64>,
    /// Which kind of history block the next lines belong to.
    block: Block,
    /// The client is in the chat on this connection.
    joined: bool,
    /// Missed lines shown on this connection.
    replayed: u64,
    /// The first id seen on this connection.
    first_id: Option<u64>,
    /// Joined after a `/since`, but no id has come yet to count the lost
    /// lines with: count them at the first one.
    count_pending: bool,
}

impl Default for Resume {
    fn default() -> Self {
        Resume::new()
    }
}

impl Resume {
    /// Nothing seen yet: the first connection shows the recent lines.
    pub fn new() -> Self {
        Resume {
            last: None,
            count: 0,
            barrier: None,
            received: 0,
            since: None,
            block: Block::Outside,
            joined: false,
            replayed: 0,
            first_id: None,
            count_pending: false,
        }
    }

    /// The last id seen, if any.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// A new connection: returns what to send before anything else (whole
    /// lines): `/ids on`, `/since LAST` once a public line has been seen,
    /// and a barrier whose token starts with `prefix`.
    pub fn start(&mut self, prefix: &str) -> String {
        self.count += 1;
        let token = format!("{prefix}r{}", self.count);
        let mut out = String::from("/ids on\n");
        if let Some(last) = self.last {
            let _ = writeln!(out, "/since {last}");
        }
        let _ = writeln!(out, "/ping {token}");
        self.barrier = Some(token);
        self.received = 0;
        self.since = self.last;
        self.block = Block::Outside;
        self.joined = false;
        self.replayed = 0;
        self.first_id = None;
        self.count_pending = false;
        out
    }

    /// A line from the server (the caller has already hidden its own
    /// keepalive answers).
    pub fn line(&mut self, line: &str) -> Seen {
        self.received += 1;
        let mut seen = Seen {
            show: true,
            skip: 0,
            to_login: true,
            note: None,
        };
        if let Some(token) = &self.barrier {
            if line.strip_prefix("/pong ") == Some(token.as_str()) {
                self.barrier = None;
                seen.show = false;
                seen.to_login = false;
            } else if self.received > 1 {
                // An answer to `/ids on` or `/since`: not the user's.
                seen.show = false;
                seen.to_login = false;
            }
            return seen;
        }
        let (id, skip) = split_id(line);
        seen.skip = skip;
        let text = &line[skip..];
        match self.block {
            Block::Outside if text.starts_with(BLOCK_START) => {
                self.block = if self.joined {
                    Block::Asked
                } else {
                    Block::Login
                };
                seen.to_login = false;
                seen.show = !self.hides_framing();
            }
            Block::Outside => {
                if let Some(id) = id {
                    seen.note = self.public(id);
                }
            }
            Block::Login | Block::Asked if text == BLOCK_END => {
                seen.to_login = false;
                seen.show = !(self.block == Block::Login && self.hides_framing());
                self.block = Block::Outside;
            }
            Block::Login => {
                seen.to_login = false;
                if let Some(id) = id {
                    self.replayed += u64::from(self.since.is_some());
                    seen.note = self.public(id);
                }
            }
            Block::Asked => seen.to_login = false,
        }
        seen
    }

    /// The client is in the chat on this connection (its join notice came):
    /// after a `/since`, the status line about the lines it missed.
    pub fn joined(&mut self) -> Option<String> {
        self.joined = true;
        self.since?;
        if self.first_id.is_none() {
            // A quiet join (section 7) with nothing kept: the next public
            // line tells how many were lost.
            self.count_pending = true;
            return None;
        }
        Some(self.report())
    }

    /// True on a connection that resumes: the block's framing is hidden.
    fn hides_framing(&self) -> bool {
        self.since.is_some()
    }

    /// A public line with `id` was shown live or as a missed line.
    fn public(&mut self, id: u64) -> Option<String> {
        self.first_id.get_or_insert(id);
        self.last = Some(id);
        if self.count_pending {
            self.count_pending = false;
            return Some(self.report());
        }
        None
    }

    /// How many lines this connection missed, shown and lost.
    fn report(&self) -> String {
        let (Some(since), Some(first)) = (self.since, self.first_id) else {
            return "missed no lines while away".into();
        };
        let shown = self.replayed;
        if first <= since {
            return format!(
                "the server's line ids started over (it was restarted without its history): lines said while away may be missing{}",
                if shown > 0 {
                    format!("; {shown} recent line{} shown", plural(shown))
                } else {
                    String::new()
                }
            );
        }
        let lost = first - since - 1;
        let missed = shown + lost;
        match (shown, lost) {
            (0, 0) => "missed no lines while away".into(),
            (_, 0) => format!("missed {missed} line{} while away (shown)", plural(missed)),
            (0, _) => format!(
                "missed {missed} line{} while away, all lost: the server no longer kept them",
                plural(missed)
            ),
            _ => format!(
                "missed {missed} lines while away: {shown} shown, {lost} lost (the server no longer kept them)"
            ),
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: &str = "[SERVER]: Welcome! Please enter your name:";
    const WELCOME: &str = "[SERVER]: Welcome to the chat, al! 2 users online.";

    /// Feeds lines; returns (shown text, to the login, notes).
    fn feed(r: &mut Resume, lines: &[&str]) -> (Vec<String>, Vec<String>, Vec<String>) {
        let (mut shown, mut login, mut notes) = (Vec::new(), Vec::new(), Vec::new());
        for l in lines {
            let s = r.line(l);
            if s.show {
                shown.push(l[s.skip..].to_owned());
            }
            if s.to_login {
                login.push(l[s.skip..].to_owned());
            }
            notes.extend(s.note);
        }
        (shown, login, notes)
    }

    #[test]
    fn ids_are_split_only_from_at_digits_space() {
        assert_eq!(split_id("@42 bob: hi"), (Some(42), 4));
        assert_eq!(split_id("@1 [SERVER]: x"), (Some(1), 3));
        for plain in [
            "bob: @42 hi",
            "@ 42 x",
            "@42x y",
            "@42",
            "@x1 y",
            "@",
            "",
            "@99999999999999999999999 overflow",
        ] {
            assert_eq!(split_id(plain), (None, 0), "{plain:?}");
        }
    }

    #[test]
    fn the_first_connection_shows_the_block_as_sent_and_remembers_ids() {
        let mut r = Resume::new();
        assert_eq!(r.start("P"), "/ids on\n/ping Pr1\n");
        let (shown, login, notes) = feed(
            &mut r,
            &[
                GREETING,
                "[SERVER]: Ids on: public lines now start with @ID.",
                "/pong Pr1",
                WELCOME,
                "[SERVER]: History (2 lines):",
                "@7 [SERVER]: bob joined the chat!",
                "@8 bob: hi",
                "[SERVER]: End of history.",
                "@9 [SERVER]: al joined the chat!",
            ],
        );
        assert_eq!(
            shown,
            [
                GREETING,
                WELCOME,
                "[SERVER]: History (2 lines):",
                "[SERVER]: bob joined the chat!",
                "bob: hi",
                "[SERVER]: End of history.",
                "[SERVER]: al joined the chat!",
            ]
        );
        // The block's lines never reach the login: a join notice in the
        // history is not ours.
        assert_eq!(login, [GREETING, WELCOME, "[SERVER]: al joined the chat!"]);
        assert!(notes.is_empty());
        assert_eq!(r.joined(), None, "no status on a first login");
        assert_eq!(r.last(), Some(9));
        feed(&mut r, &["@10 bob: live", "[PM from bob]: psst"]);
        assert_eq!(r.last(), Some(10));
    }

    #[test]
    fn a_user_asked_history_is_shown_and_not_remembered() {
        let mut r = Resume::new();
        r.start("P");
        feed(
            &mut r,
            &[GREETING, "/pong Pr1", "@5 [SERVER]: al joined the chat!"],
        );
        r.joined();
        let (shown, login, _) = feed(
            &mut r,
            &[
                "[SERVER]: History (2 lines):",
                "@4 bob: old",
                "@5 [SERVER]: al joined the chat!",
                "[SERVER]: End of history.",
            ],
        );
        assert_eq!(
            shown,
            [
                "[SERVER]: History (2 lines):",
                "bob: old",
                "[SERVER]: al joined the chat!",
                "[SERVER]: End of history."
            ]
        );
        assert!(login.is_empty());
        assert_eq!(r.last(), Some(5));
    }

    /// A reconnect after line 9: the missed lines, without the framing,
    /// and one status line.
    fn reconnect(r: &mut Resume, lines: &[&str]) -> (Vec<String>, Option<String>) {
        assert_eq!(r.start("P"), "/ids on\n/since 9\n/ping Pr2\n");
        let mut all = vec![
            GREETING,
            "[SERVER]: Ids on: public lines now start with @ID.",
            "[SERVER]: You will get the lines after 9 once you choose a name.",
            "/pong Pr2",
            WELCOME,
        ];
        all.extend_from_slice(lines);
        let (shown, _, notes) = feed(r, &all);
        assert!(notes.is_empty());
        (shown, r.joined())
    }

    fn seen_up_to_9() -> Resume {
        let mut r = Resume::new();
        r.start("P");
        feed(
            &mut r,
            &[GREETING, "/pong Pr1", "@9 [SERVER]: al joined the chat!"],
        );
        r.joined();
        r
    }

    #[test]
    fn a_reconnect_shows_the_missed_lines_without_framing() {
        let mut r = seen_up_to_9();
        let (shown, note) = reconnect(
            &mut r,
            &[
                "[SERVER]: History (2 lines):",
                "@10 bob: while away",
                "@11 [SERVER]: al has disconnected.",
                "[SERVER]: End of history.",
                "@12 [SERVER]: al joined the chat!",
            ],
        );
        assert_eq!(
            shown,
            [
                GREETING,
                WELCOME,
                "bob: while away",
                "[SERVER]: al has disconnected.",
                "[SERVER]: al joined the chat!"
            ]
        );
        assert_eq!(note.as_deref(), Some("missed 2 lines while away (shown)"));
        assert_eq!(r.last(), Some(12));
    }

    #[test]
    fn nothing_missed_is_said_too() {
        let mut r = seen_up_to_9();
        let (_, note) = reconnect(&mut r, &["@10 [SERVER]: al joined the chat!"]);
        assert_eq!(note.as_deref(), Some("missed no lines while away"));
    }

    #[test]
    fn lines_beyond_the_history_are_counted_as_lost() {
        let mut r = seen_up_to_9();
        let lost = "[SERVER]: 3 lines after 9 are no longer kept (this room keeps its last 2).";
        let (shown, note) = reconnect(
            &mut r,
            &[
                lost,
                "[SERVER]: History (2 lines):",
                "@13 bob: a",
                "@14 bob: b",
                "[SERVER]: End of history.",
                "@15 [SERVER]: al joined the chat!",
            ],
        );
        assert_eq!(
            shown[2..],
            [lost, "bob: a", "bob: b", "[SERVER]: al joined the chat!"]
        );
        assert_eq!(
            note.as_deref(),
            Some("missed 5 lines while away: 2 shown, 3 lost (the server no longer kept them)")
        );
        // With nothing kept at all (--history 0).
        let mut r = seen_up_to_9();
        let (_, note) = reconnect(&mut r, &["@15 [SERVER]: al joined the chat!"]);
        assert_eq!(
            note.as_deref(),
            Some("missed 5 lines while away, all lost: the server no longer kept them")
        );
    }

    #[test]
    fn a_quiet_join_counts_at_the_next_public_line() {
        let mut r = seen_up_to_9();
        let (_, note) = reconnect(&mut r, &["[SERVER]: al joined the chat!"]);
        assert_eq!(note, None);
        let (_, _, notes) = feed(&mut r, &["[PM from bob]: x", "@13 bob: hello"]);
        assert_eq!(
            notes,
            ["missed 3 lines while away, all lost: the server no longer kept them"]
        );
        let (_, _, notes) = feed(&mut r, &["@14 bob: again"]);
        assert!(notes.is_empty(), "said once");
    }

    #[test]
    fn ids_that_started_over_are_followed() {
        let mut r = seen_up_to_9();
        let (shown, note) = reconnect(
            &mut r,
            &[
                "[SERVER]: There is no line 9 in this room: its last line is 2 (its ids started over). Here are the recent lines.",
                "[SERVER]: History (2 lines):",
                "@1 [SERVER]: bob joined the chat!",
                "@2 bob: new server",
                "[SERVER]: End of history.",
                "@3 [SERVER]: al joined the chat!",
            ],
        );
        assert!(shown[2].contains("started over"), "{shown:?}");
        assert_eq!(
            shown[3..5],
            ["[SERVER]: bob joined the chat!", "bob: new server"]
        );
        assert!(note.unwrap().contains("ids started over"));
        assert_eq!(r.last(), Some(3), "the new ids from now on");
    }

    #[test]
    fn a_server_without_ids_is_a_first_connection_every_time() {
        let mut r = Resume::new();
        r.start("P");
        feed(
            &mut r,
            &[
                GREETING,
                "[SERVER]: Please choose a name first (a name may not start with '/'):",
                "/pong Pr1",
                "[SERVER]: al joined the chat!",
                "bob: hi",
            ],
        );
        assert_eq!(r.joined(), None);
        assert_eq!(r.start("P"), "/ids on\n/ping Pr2\n");
    }
}
