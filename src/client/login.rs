//! Logging in as plain code: server lines and timer ticks in, what to send
//! and what to tell the user out ([`Login`]).
//!
//! Two ways in:
//! - **Manual** (first start without `--name`): the user reads the greeting
//!   and types a name; typed lines go to the server as they are. The client
//!   only watches for the join notice to learn the name it got.
//! - **Automatic** (`--name`, or any reconnect once a name is known): after
//!   the greeting the client sends the name and, right behind it, a
//!   `/ping TOKEN` barrier (the server answers `/ping` before login too).
//!   `[SERVER]: NAME joined the chat!` before the `/pong TOKEN` means it is
//!   in; the pong without it means the name was refused, whatever the
//!   refusal's wording. A refused name is tried again every
//!   [`Names::step`] until `--name-wait` has passed (the server may still
//!   hold the old session's name), then variants `name_`, `name__`, ... are
//!   tried in turn.

use std::time::{Duration, Instant};

use crate::text::NAME_MAX;

/// Prefix of every notice.
pub const NOTICE: &str = "[SERVER]: ";

/// The name in `[SERVER]: NAME joined the chat!`, if `line` is that notice.
pub fn parse_join(line: &str) -> Option<&str> {
    let name = line
        .strip_prefix(NOTICE)?
        .strip_suffix(" joined the chat!")?;
    (!name.is_empty() && !name.contains(' ')).then_some(name)
}

/// `(OLD, NEW)` from `[SERVER]: OLD is now known as NEW.`, if `line` is that
/// notice.
pub fn parse_nick(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(NOTICE)?.strip_suffix('.')?;
    let (old, new) = rest.split_once(" is now known as ")?;
    (!old.contains(' ') && !new.contains(' ') && !new.is_empty()).then_some((old, new))
}

/// The `k`-th fallback for `name`: `k` underscores appended, the name cut
/// short if needed to stay within [`NAME_MAX`] characters. `None` once no
/// character of the name would be left.
pub fn variant(name: &str, k: usize) -> Option<String> {
    if k == 0 {
        return Some(name.to_owned());
    }
    let keep = NAME_MAX.checked_sub(k).filter(|&n| n > 0)?;
    let mut v: String = name.chars().take(keep).collect();
    v.extend(std::iter::repeat_n('_', k));
    Some(v)
}

/// Which name to try next, with patience for a name the server still holds.
#[derive(Debug, Clone)]
pub struct Names {
    /// The name the user has (or asked for).
    wanted: String,
    /// Underscores appended to `wanted` in the name being tried.
    suffix: usize,
    /// The name being tried.
    trying: String,
    /// When `wanted` was first refused in this login.
    first_refusal: Option<Instant>,
    /// How long to keep trying `wanted` (`--name-wait`).
    wait: Duration,
    /// Time between two tries of `wanted`.
    step: Duration,
}

/// What to do after a refused name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Try the same name again at this time.
    RetryAt(Instant),
    /// Try this name now.
    Try(String),
    /// No name left to try.
    Exhausted,
}

impl Names {
    /// Default time between two tries of a held name.
    pub const STEP: Duration = Duration::from_secs(1);

    /// Tries `wanted`, for up to `wait` while it is refused, then variants.
    pub fn new(wanted: &str, wait: Duration) -> Self {
        Names {
            wanted: wanted.to_owned(),
            suffix: 0,
            trying: wanted.to_owned(),
            first_refusal: None,
            wait,
            step: Self::STEP,
        }
    }

    /// Time between two tries of the wanted name.
    pub fn step(&self) -> Duration {
        self.step
    }

    /// The name being tried.
    pub fn trying(&self) -> &str {
        &self.trying
    }

    /// The name the user wants.
    pub fn wanted(&self) -> &str {
        &self.wanted
    }

    /// The name being tried was refused at `now`.
    pub fn refused(&mut self, now: Instant) -> Refusal {
        if self.suffix == 0 {
            let first = *self.first_refusal.get_or_insert(now);
            let until = first + self.wait;
            if now < until {
                return Refusal::RetryAt((now + self.step).min(until));
            }
        }
        self.suffix += 1;
        match variant(&self.wanted, self.suffix) {
            Some(v) => {
                self.trying = v.clone();
                Refusal::Try(v)
            }
            None => Refusal::Exhausted,
        }
    }
}

/// What the caller should do after feeding a line or a tick to [`Login`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    /// Do not show the line (an answer to our own barrier).
    pub hide: bool,
    /// Send this to the server (whole lines, LFs included).
    pub send: Option<String>,
    /// Logged in under this name.
    pub joined: Option<String>,
    /// Tell the user this (one status line).
    pub note: Option<String>,
    /// Give this connection up for this reason.
    pub fail: Option<String>,
}

/// Where an automatic login stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the greeting.
    Greeting,
    /// Name sent, barrier outstanding.
    Verdict,
    /// Name refused; try again at this time.
    RetryAt(Instant),
    /// In the chat.
    Done,
}

/// One connection's login.
#[derive(Debug, Clone)]
pub struct Login {
    /// `None` in manual mode.
    names: Option<Names>,
    /// Progress (automatic mode; manual mode only uses `Done`).
    phase: Phase,
    /// Token of the barrier whose answer is still to be hidden.
    barrier: Option<String>,
    /// Start of every barrier token.
    prefix: String,
    /// Barriers sent so far.
    count: u32,
}

impl Login {
    /// The user types the name.
    pub fn manual() -> Self {
        Login {
            names: None,
            phase: Phase::Greeting,
            barrier: None,
            prefix: String::new(),
            count: 0,
        }
    }

    /// The client logs in as `name` by itself, waiting up to `wait` for a
    /// held name; barrier tokens start with `prefix`.
    pub fn auto(name: &str, wait: Duration, prefix: &str) -> Self {
        Self::with_names(Names::new(name, wait), prefix)
    }

    /// Automatic login with a prepared name policy.
    pub fn with_names(names: Names, prefix: &str) -> Self {
        Login {
            names: Some(names),
            phase: Phase::Greeting,
            barrier: None,
            prefix: prefix.to_owned(),
            count: 0,
        }
    }

    /// True once the join notice has come.
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// True when the user types the name.
    pub fn is_manual(&self) -> bool {
        self.names.is_none()
    }

    /// When [`Login::tick`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::RetryAt(at) => Some(at),
            _ => None,
        }
    }

    /// A line from the server arrived at `now`.
    pub fn line(&mut self, line: &str, now: Instant) -> Step {
        let mut step = Step::default();
        if let Some(token) = &self.barrier {
            if line.strip_prefix("/pong ") == Some(token.as_str()) {
                self.barrier = None;
                step.hide = true;
                if self.phase == Phase::Verdict {
                    self.refused(now, &mut step);
                }
                return step;
            }
        }
        match (&self.names, &self.phase) {
            (_, Phase::Done) => {}
            (None, _) => {
                if let Some(name) = parse_join(line) {
                    self.phase = Phase::Done;
                    step.joined = Some(name.to_owned());
                }
            }
            (Some(_), Phase::Greeting) => {
                if line.starts_with(NOTICE) {
                    step.send = Some(self.offer());
                }
            }
            (Some(names), Phase::Verdict) => {
                if parse_join(line) == Some(names.trying()) {
                    self.phase = Phase::Done;
                    step.joined = Some(names.trying().to_owned());
                }
            }
            (Some(_), Phase::RetryAt(_)) => {}
        }
        step
    }

    /// Time passed; `now` may be at or after [`Login::deadline`].
    pub fn tick(&mut self, now: Instant) -> Step {
        let mut step = Step::default();
        if let Phase::RetryAt(at) = self.phase {
            if now >= at {
                step.send = Some(self.offer());
            }
        }
        step
    }

    /// The name being tried and its barrier; enters `Verdict`.
    fn offer(&mut self) -> String {
        let name = self.names.as_ref().map_or("", |n| n.trying());
        self.count += 1;
        let token = format!("{}n{}", self.prefix, self.count);
        let out = format!("{name}\n/ping {token}\n");
        self.barrier = Some(token);
        self.phase = Phase::Verdict;
        out
    }

    /// The barrier came back without a join notice.
    fn refused(&mut self, now: Instant, step: &mut Step) {
        let Some(names) = self.names.as_mut() else {
            return;
        };
        let refused = names.trying().to_owned();
        let first = names.first_refusal.is_none();
        match names.refused(now) {
            Refusal::RetryAt(at) => {
                if first {
                    let secs = names.wait.as_secs_f64();
                    step.note = Some(format!(
                        "the name {refused} is taken (the server may still hold our old session); trying it again for up to {secs} s"
                    ));
                }
                self.phase = Phase::RetryAt(at);
            }
            Refusal::Try(next) => {
                step.note = Some(format!(
                    "the name {refused} is taken; trying {next} instead"
                ));
                step.send = Some(self.offer());
            }
            Refusal::Exhausted => {
                step.fail = Some(format!("no free name left to try after {refused}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    const GREETING: &str = "[SERVER]: Welcome! Please enter your name:";

    #[test]
    fn parses_join_and_nick_notices() {
        assert_eq!(parse_join("[SERVER]: bob joined the chat!"), Some("bob"));
        assert_eq!(parse_join("bob: [SERVER]: x joined the chat!"), None);
        assert_eq!(parse_join("[SERVER]: a b joined the chat!"), None);
        assert_eq!(parse_join("[SERVER]: bob left the chat."), None);
        assert_eq!(
            parse_nick("[SERVER]: bob is now known as Rob."),
            Some(("bob", "Rob"))
        );
        assert_eq!(parse_nick("[SERVER]: bob is now known as Rob"), None);
        assert_eq!(parse_nick("bob: bob is now known as Rob."), None);
    }

    #[test]
    fn variants_stay_within_the_name_limit() {
        assert_eq!(variant("bob", 0).unwrap(), "bob");
        assert_eq!(variant("bob", 1).unwrap(), "bob_");
        assert_eq!(variant("bob", 2).unwrap(), "bob__");
        let long = "é".repeat(32);
        let v = variant(&long, 1).unwrap();
        assert_eq!(v.chars().count(), 32);
        assert!(v.ends_with("é_"));
        assert_eq!(variant("bob", 31).unwrap(), format!("b{}", "_".repeat(31)));
        assert_eq!(variant("bob", 32), None);
        for k in 1..32 {
            let v = variant(&"x".repeat(32), k).unwrap();
            assert!(crate::text::check_name(&v).is_ok(), "{v}");
        }
    }

    #[test]
    fn names_wait_then_fall_back() {
        let t0 = Instant::now();
        let mut n = Names::new("bob", s(3.0));
        assert_eq!(n.refused(t0), Refusal::RetryAt(t0 + s(1.0)));
        assert_eq!(n.refused(t0 + s(1.0)), Refusal::RetryAt(t0 + s(2.0)));
        assert_eq!(n.refused(t0 + s(2.5)), Refusal::RetryAt(t0 + s(3.0)));
        assert_eq!(n.refused(t0 + s(3.0)), Refusal::Try("bob_".into()));
        // Variants are tried one after the other, without waiting.
        assert_eq!(n.refused(t0 + s(3.0)), Refusal::Try("bob__".into()));
        assert_eq!(n.trying(), "bob__");
        assert_eq!(n.wanted(), "bob");
    }

    #[test]
    fn no_wait_means_falling_back_at_once() {
        let t0 = Instant::now();
        let mut n = Names::new("bob", Duration::ZERO);
        assert_eq!(n.refused(t0), Refusal::Try("bob_".into()));
    }

    #[test]
    fn names_run_out() {
        let t0 = Instant::now();
        let mut n = Names::new("ab", Duration::ZERO);
        for _ in 1..32 {
            assert!(matches!(n.refused(t0), Refusal::Try(_)));
        }
        assert_eq!(n.refused(t0), Refusal::Exhausted);
    }

    #[test]
    fn auto_login_sends_name_and_barrier_after_greeting() {
        let t0 = Instant::now();
        let mut l = Login::auto("bob", s(10.0), "P");
        assert!(!l.is_manual());
        assert_eq!(l.line("/pong other", t0), Step::default());
        let st = l.line(GREETING, t0);
        assert_eq!(st.send.as_deref(), Some("bob\n/ping Pn1\n"));
        assert!(!st.hide);
        let st = l.line("[SERVER]: Welcome to the chat, bob! Type /help ...", t0);
        assert_eq!(st, Step::default());
        let st = l.line("[SERVER]: bob joined the chat!", t0);
        assert_eq!(st.joined.as_deref(), Some("bob"));
        assert!(l.done());
        // The barrier's answer still comes, and is hidden, once.
        assert!(l.line("/pong Pn1", t0).hide);
        assert!(!l.line("/pong Pn1", t0).hide);
        assert!(l
            .line("[SERVER]: eve joined the chat!", t0)
            .joined
            .is_none());
    }

    #[test]
    fn refused_name_is_retried_then_varied() {
        let t0 = Instant::now();
        let mut l = Login::auto("bob", s(2.0), "P");
        l.line(GREETING, t0);
        let st = l.line(
            "[SERVER]: Sorry, the name bob is taken. Please choose another name:",
            t0,
        );
        assert_eq!(st, Step::default(), "shown, nothing to do yet");
        let st = l.line("/pong Pn1", t0);
        assert!(st.hide);
        assert!(st.note.as_deref().unwrap().contains("bob is taken"));
        assert!(st.send.is_none());
        assert_eq!(l.deadline(), Some(t0 + s(1.0)));
        assert_eq!(l.tick(t0 + s(0.5)), Step::default());
        let st = l.tick(t0 + s(1.0));
        assert_eq!(st.send.as_deref(), Some("bob\n/ping Pn2\n"));
        assert_eq!(l.deadline(), None);
        l.line("[SERVER]: Sorry, the name bob is taken.", t0 + s(1.0));
        let st = l.line("/pong Pn2", t0 + s(1.0));
        assert!(st.note.is_none(), "said once");
        assert!(l.tick(t0 + s(2.0)).send.is_some());
        let st = l.line("/pong Pn3", t0 + s(2.0));
        assert_eq!(st.send.as_deref(), Some("bob_\n/ping Pn4\n"));
        assert!(st.note.as_deref().unwrap().contains("bob_"));
        // A join notice for another name is not ours.
        assert!(l
            .line("[SERVER]: bob joined the chat!", t0)
            .joined
            .is_none());
        let st = l.line("[SERVER]: bob_ joined the chat!", t0);
        assert_eq!(st.joined.as_deref(), Some("bob_"));
    }

    #[test]
    fn the_held_name_comes_back_within_the_wait() {
        let t0 = Instant::now();
        let mut l = Login::auto("bob", s(10.0), "P");
        l.line(GREETING, t0);
        l.line("/pong Pn1", t0);
        l.tick(t0 + s(1.0));
        let st = l.line("[SERVER]: bob joined the chat!", t0 + s(1.0));
        assert_eq!(st.joined.as_deref(), Some("bob"));
    }

    #[test]
    fn manual_login_learns_the_name_from_the_join_notice() {
        let t0 = Instant::now();
        let mut l = Login::manual();
        assert!(l.is_manual());
        assert_eq!(l.line(GREETING, t0), Step::default());
        assert_eq!(
            l.line("[SERVER]: Sorry, the name x is bad.", t0),
            Step::default()
        );
        assert_eq!(l.line("/pong x", t0), Step::default());
        let st = l.line("[SERVER]: Amy joined the chat!", t0);
        assert_eq!(st.joined.as_deref(), Some("Amy"));
        assert!(l.done());
        assert_eq!(l.line("[SERVER]: Bo joined the chat!", t0), Step::default());
        assert_eq!(l.deadline(), None);
    }
}
