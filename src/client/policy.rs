//! The client's timing rules as plain values (PROTOCOL.md section 6): when to
//! retry a lost connection ([`Retry`]) and when to ping, which answers to
//! hide and when silence means the connection is gone ([`Keepalive`]).
//!
//! Nothing here reads a clock or touches a socket: callers pass `Instant`s in
//! and act on the answers, so every rule is unit-tested with made-up times.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// Delay before the first retry.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between two tries.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// Keepalive periods without a byte from the server after which the
/// connection counts as lost.
pub const SILENT_PERIODS: u32 = 3;

/// How many more times to try, and how long to wait before each try: 1 s,
/// doubling, at most 8 s. A successful login starts the count again.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Tries allowed after a failure (`--retries`).
    max: u32,
    /// Tries used since the last successful login.
    used: u32,
}

impl Retry {
    /// A policy allowing `max` retries in a row.
    pub fn new(max: u32) -> Self {
        Retry { max, used: 0 }
    }

    /// The client is (back) in the chat: the next failure starts from 1 s.
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// Tries allowed in a row.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// After a failure: `Some((n, delay))` to wait `delay` and make try
    /// number `n` (1-based), or `None` when the tries have run out.
    pub fn next_try(&mut self) -> Option<(u32, Duration)> {
        if self.used >= self.max {
            return None;
        }
        self.used += 1;
        Some((self.used, delay(self.used)))
    }
}

/// The wait before retry number `n` (1-based): 1 s, 2 s, 4 s, 8 s, 8 s, ...
pub fn delay(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// Most keepalive tokens remembered as unanswered; older ones are forgotten
/// (the connection is declared lost long before this many go unanswered).
const MAX_OUTSTANDING: usize = 8;

/// Keepalive bookkeeping for one connection.
///
/// A ping is due once a period has passed since the last ping and either
/// direction has been quiet for a period: quiet input is how a dead server
/// is found, quiet output is what the server's idle timeout counts. Each
/// ping carries a fresh token; exactly the answers to those tokens are
/// hidden. [`SILENT_PERIODS`] periods without a byte mean the connection is
/// gone.
#[derive(Debug, Clone)]
pub struct Keepalive {
    /// `--keepalive`.
    period: Duration,
    /// Last byte received from the server.
    last_rx: Instant,
    /// Last line sent to the server (pings included).
    last_tx: Instant,
    /// Last ping sent (the connection's start before the first).
    last_ping: Instant,
    /// Start of every token, unique to this client process.
    prefix: String,
    /// Tokens handed out so far.
    count: u64,
    /// Tokens sent and not answered yet, oldest first.
    outstanding: VecDeque<String>,
}

impl Keepalive {
    /// Bookkeeping for a connection opened at `now`; tokens start with
    /// `prefix` (letters and digits only, so the server echoes them as is).
    pub fn new(period: Duration, now: Instant, prefix: &str) -> Self {
        Keepalive {
            period,
            last_rx: now,
            last_tx: now,
            last_ping: now,
            prefix: prefix.to_owned(),
            count: 0,
            outstanding: VecDeque::new(),
        }
    }

    /// Bytes arrived from the server at `now`.
    pub fn received(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
    }

    /// A line was sent to the server at `at`.
    pub fn sent(&mut self, at: Instant) {
        self.last_tx = self.last_tx.max(at);
    }

    /// When the next ping is due.
    pub fn ping_at(&self) -> Instant {
        self.last_ping.max(self.last_tx.min(self.last_rx)) + self.period
    }

    /// True if a ping should be sent now.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.ping_at()
    }

    /// When the silence rule declares the connection lost.
    pub fn dead_at(&self) -> Instant {
        self.last_rx + self.silence()
    }

    /// True once the server has been silent for [`SILENT_PERIODS`] periods.
    pub fn dead(&self, now: Instant) -> bool {
        now >= self.dead_at()
    }

    /// The silence that counts as a lost connection.
    pub fn silence(&self) -> Duration {
        self.period * SILENT_PERIODS
    }

    /// When the caller must look at this again (next ping or death).
    pub fn next_check(&self) -> Instant {
        self.ping_at().min(self.dead_at())
    }

    /// Records a ping sent at `now` and returns its line (LF included).
    pub fn ping(&mut self, now: Instant) -> String {
        self.count += 1;
        let token = format!("{}k{}", self.prefix, self.count);
        let line = format!("/ping {token}\n");
        if self.outstanding.len() == MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(token);
        self.last_ping = now;
        self.sent(now);
        line
    }

    /// True if `line` answers one of our pings: the caller hides it. Each
    /// token is hidden once; a `/pong` the user asked for is never ours.
    pub fn hide(&mut self, line: &str) -> bool {
        let Some(token) = line.strip_prefix("/pong ") else {
            return false;
        };
        match self.outstanding.iter().position(|t| t == token) {
            Some(i) => {
                self.outstanding.remove(i);
                true
            }
            None => false,
        }
    }
}

/// A token prefix unique to this process, e.g. `ka3f9c01d2e7b`: letters and
/// digits only, so a user's own `/ping` tokens practically never collide.
pub fn token_prefix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("ka{:012x}", h.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(20);

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn delays_double_up_to_eight_seconds() {
        let d: Vec<u64> = (1..=7).map(|n| delay(n).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 8, 8, 8]);
        assert_eq!(delay(1000), MAX_DELAY);
    }

    #[test]
    fn retries_run_out_and_reset_on_login() {
        let mut r = Retry::new(3);
        assert_eq!(r.next_try(), Some((1, s(1.0))));
        assert_eq!(r.next_try(), Some((2, s(2.0))));
        assert_eq!(r.next_try(), Some((3, s(4.0))));
        assert_eq!(r.next_try(), None);
        assert_eq!(r.next_try(), None);
        r.reset();
        assert_eq!(r.next_try(), Some((1, s(1.0))));
        assert_eq!(Retry::new(0).next_try(), None);
    }

    #[test]
    fn pings_when_idle_and_dies_after_three_silent_periods() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "kaX");
        assert!(!k.due(t0 + s(19.9)));
        assert!(k.due(t0 + P));
        let line = k.ping(t0 + P);
        assert_eq!(line, "/ping kaXk1\n");
        // Nothing comes back: one ping per period, dead after three.
        assert!(!k.due(t0 + s(39.9)));
        assert!(k.due(t0 + 2 * P));
        k.ping(t0 + 2 * P);
        assert!(!k.dead(t0 + s(59.9)));
        assert!(k.dead(t0 + 3 * P));
        assert_eq!(k.next_check(), t0 + 3 * P);
    }

    #[test]
    fn any_byte_keeps_the_connection_alive() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "kaX");
        k.ping(t0 + P);
        k.received(t0 + s(50.0));
        assert!(!k.dead(t0 + s(109.0)));
        assert!(k.dead(t0 + s(110.0)));
        // Time never goes back.
        k.received(t0);
        assert_eq!(k.dead_at(), t0 + s(110.0));
    }

    #[test]
    fn busy_in_both_directions_means_no_ping() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "kaX");
        for i in 1..10 {
            let t = t0 + s(10.0 * i as f64);
            k.received(t);
            k.sent(t);
            assert!(!k.due(t), "{i}");
        }
    }

    #[test]
    fn quiet_output_alone_needs_a_ping() {
        // A busy room keeps us reading, but the server's idle timeout counts
        // what we send: still ping once a period.
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "kaX");
        k.received(t0 + s(19.0));
        assert!(k.due(t0 + P));
        k.ping(t0 + P);
        k.received(t0 + s(30.0));
        assert!(!k.due(t0 + s(39.0)));
        assert!(k.due(t0 + 2 * P));
    }

    #[test]
    fn quiet_input_alone_needs_a_ping() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "kaX");
        k.sent(t0 + s(19.0));
        assert!(k.due(t0 + P));
    }

    #[test]
    fn hides_exactly_its_own_pongs_once() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "kaX");
        k.ping(t0 + P);
        k.ping(t0 + 2 * P);
        assert!(!k.hide("/pong"));
        assert!(!k.hide("/pong x"));
        assert!(!k.hide("/pong kaXk3"));
        assert!(!k.hide("bob: /pong kaXk1"));
        assert!(k.hide("/pong kaXk2"));
        assert!(k.hide("/pong kaXk1"));
        assert!(!k.hide("/pong kaXk1"), "hidden once");
    }

    #[test]
    fn forgets_tokens_beyond_the_bound() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(P, t0, "p");
        for i in 1..=(MAX_OUTSTANDING as u32 + 2) {
            k.ping(t0 + P * i);
        }
        assert!(!k.hide("/pong pk1"));
        assert!(!k.hide("/pong pk2"));
        assert!(k.hide("/pong pk3"));
        assert!(k.hide(&format!("/pong pk{}", MAX_OUTSTANDING + 2)));
    }

    #[test]
    fn prefixes_are_plain_and_differ() {
        let a = token_prefix();
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, token_prefix());
    }
}
