//! The `burst` scenario: what a room of readers sees when a few users paste
//! long texts at the same instant.
//!
//! N readers and S senders log in (the senders read too: every line goes to
//! all N + S). Then, R times with a pause in between, every sender writes L
//! lines of B bytes (as received, `NAME: TEXT\n`) in one `write`, all S at
//! the same instant, and the bench reads until every user has every line
//! (or nothing comes for 2 s, or `--drain` passes). Every line of a burst
//! carries that instant as its scheduled time, so its latency runs from the
//! paste to the read. Every client fingerprints the order of the lines it
//! got ([`Fleet::track_order`]), so the run tells whether all users saw
//! every line in one and the same order. Connections the server drops are
//! counted with the reason its departure notice gave.

use std::fmt::Write as _;
use std::io;

use super::fleet::{Drops, Fleet};
use super::scenario::{
    check_load, drain, dur, fleet_for, idle, jnum, jstr, log_in, server_cpu, thousands, Load, Login,
};
use super::sys::{self, now_ns};
use super::Target;

/// The bursts: how many lines each sender pastes, how often, how far apart.
#[derive(Debug, Clone)]
pub struct BurstPlan {
    /// Lines per paste (one `write` per sender).
    pub lines: u32,
    /// Pastes per sender.
    pub bursts: u32,
    /// Seconds between the end of one burst and the next paste.
    pub pause: f64,
}

/// One burst.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// Users in the room when it began (receivers of every line).
    pub receivers: usize,
    /// Lines pasted, over all senders still in the room.
    pub lines: u64,
    /// Deliveries that should happen: lines x receivers.
    pub expected: u64,
    /// Deliveries that happened.
    pub received: u64,
    /// Seconds from the paste to the read of its last delivery (to the end
    /// of the wait if nothing arrived).
    pub span_s: f64,
    /// Our clients the server dropped during it.
    pub dropped: usize,
    /// Server CPU seconds from the paste to the end of the burst.
    pub server_cpu: f64,
}

impl Round {
    /// Deliveries per second while it was in flight.
    pub fn rate(&self) -> f64 {
        self.received as f64 / self.span_s
    }
}

/// Result of `burst`.
#[derive(Debug, Clone)]
pub struct Burst {
    /// The load (clients = readers + senders, size = B).
    pub load: Load,
    /// The bursts asked for.
    pub plan: BurstPlan,
    /// The login before the first paste.
    pub login: Login,
    /// Every burst, in order (none if the login failed).
    pub rounds: Vec<Round>,
    /// Lines that came after a later line of the same sender.
    pub reordered: u64,
    /// "too fast" refusals (the server's rate limit is on).
    pub refused: u64,
    /// Our connections the server dropped after the login (during the
    /// bursts or the pauses).
    pub dropped: usize,
    /// Why the server dropped them.
    pub drops: Drops,
    /// Users that got every line pasted.
    pub complete: usize,
    /// Distinct orders among them (1: one and the same order).
    pub orders: usize,
    /// Latency of every delivery from its paste, ns: median.
    pub p50: u64,
    /// 99th percentile, ns.
    pub p99: u64,
    /// Largest, ns.
    pub max: u64,
    /// Deliveries in the latency sample.
    pub samples: u64,
    /// Bench CPU seconds over the bursts and pauses.
    pub bench_cpu: f64,
    /// `/proc/loadavg` at the end.
    pub loadavg: String,
    /// The first thing that went wrong.
    pub first_error: Option<String>,
}

impl Burst {
    /// Lines pasted in all.
    pub fn lines(&self) -> u64 {
        self.rounds.iter().map(|r| r.lines).sum()
    }

    /// Deliveries that should have happened.
    pub fn expected(&self) -> u64 {
        self.rounds.iter().map(|r| r.expected).sum()
    }

    /// Deliveries that happened.
    pub fn received(&self) -> u64 {
        self.rounds.iter().map(|r| r.received).sum()
    }

    /// `expected - received`.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }

    /// Seconds during which a burst was in flight, in all.
    pub fn busy_s(&self) -> f64 {
        self.rounds.iter().map(|r| r.span_s).sum()
    }

    /// Deliveries per second while a burst was in flight.
    pub fn rate(&self) -> f64 {
        self.received() as f64 / self.busy_s()
    }

    /// Server CPU seconds while a burst was in flight.
    pub fn server_cpu(&self) -> f64 {
        self.rounds.iter().map(|r| r.server_cpu).sum()
    }

    /// Every user got every line, in one and the same order.
    pub fn same_order(&self) -> bool {
        self.complete == self.load.clients && self.orders == 1 && self.reordered == 0
    }

    /// Logged in, ran every burst, nothing lost, dropped or refused, one order.
    pub fn ok(&self) -> bool {
        self.login.ok()
            && self.rounds.len() == self.plan.bursts as usize
            && self.lost() == 0
            && self.dropped == 0
            && self.refused == 0
            && self.same_order()
    }
}

/// The `burst` scenario: `load.clients` users of which the first
/// `load.senders` paste `plan.lines` lines of `load.size` bytes each,
/// `plan.bursts` times.
pub fn burst(target: &Target, load: &Load, plan: &BurstPlan) -> io::Result<Burst> {
    check_load(load)?;
    let mut fleet = fleet_for(target, load)?.track_order();
    let login = log_in(&mut fleet, target, load);
    let mut rounds = Vec::new();
    let before = fleet.c.clone();
    let me0 = sys::self_cpu();
    if login.ok() {
        fleet.measure(0, u64::MAX);
        for r in 0..plan.bursts {
            if r > 0 {
                idle(&mut fleet, plan.pause)?;
            }
            if fleet.live() == 0 {
                break;
            }
            rounds.push(paste(&mut fleet, target, load, plan, r)?);
        }
    }
    let lines = rounds.iter().map(|r| r.lines).sum();
    let (complete, orders) = fleet.orders(lines);
    let h = &fleet.latency;
    let out = Burst {
        load: load.clone(),
        plan: plan.clone(),
        login,
        rounds,
        reordered: fleet.c.reordered - before.reordered,
        refused: fleet.c.refused - before.refused,
        dropped: fleet.c.dropped - before.dropped,
        drops: fleet.drops(),
        complete,
        orders,
        p50: h.quantile(0.5),
        p99: h.quantile(0.99),
        max: h.max(),
        samples: h.count(),
        bench_cpu: sys::self_cpu() - me0,
        loadavg: sys::loadavg(),
        first_error: fleet.c.first_error.clone(),
    };
    fleet.close();
    Ok(out)
}

/// Burst number `r`: every sender still in the room pastes its lines
/// `r L .. (r + 1) L` at one instant; then reads until all have arrived.
fn paste(
    fleet: &mut Fleet,
    target: &Target,
    load: &Load,
    plan: &BurstPlan,
    r: u32,
) -> io::Result<Round> {
    let receivers = fleet.live();
    let (chat0, dropped0) = (fleet.c.chat, fleet.c.dropped);
    let cpu0 = server_cpu(target);
    let t = now_ns();
    let mut lines = 0;
    for s in 0..load.senders {
        if fleet.is_in(s) {
            fleet.send_lines(s, r * plan.lines, plan.lines, t);
            lines += u64::from(plan.lines);
        }
    }
    let expected = lines * receivers as u64;
    drain(fleet, chat0 + expected, load.drain)?;
    let received = fleet.c.chat - chat0;
    // Until the last line was read; when none was, until the bench gave up.
    let end = if received > 0 {
        fleet.c.last_chat_ns
    } else {
        now_ns()
    };
    Ok(Round {
        receivers,
        lines,
        expected,
        received,
        span_s: end.saturating_sub(t) as f64 / 1e9,
        dropped: fleet.c.dropped - dropped0,
        server_cpu: server_cpu(target) - cpu0,
    })
}

impl Round {
    /// One line of the report.
    pub fn short(&self, k: usize) -> String {
        format!(
            "  burst {k:<5} {} lines to {} users: {} of {} read in {} ({} deliveries/s); {} dropped",
            thousands(self.lines as f64),
            thousands(self.receivers as f64),
            thousands(self.received as f64),
            thousands(self.expected as f64),
            dur((self.span_s * 1e9) as u64),
            thousands(self.rate()),
            self.dropped
        )
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"receivers\":{},\"lines\":{},\"expected\":{},\"received\":{},\"span_s\":{},\"deliveries_per_s\":{},\"dropped\":{},\"server_cpu_s\":{}}}",
            self.receivers,
            self.lines,
            self.expected,
            self.received,
            jnum(self.span_s),
            jnum(self.rate()),
            self.dropped,
            jnum(self.server_cpu)
        )
    }
}

impl Burst {
    /// A readable report.
    pub fn text(&self) -> String {
        let l = &self.load;
        let p = &self.plan;
        let mut s = format!(
            "burst: {} readers and {} senders; each sender pastes {} lines of {} B in one write, all at the same instant, {} times, {} s apart\n",
            thousands((l.clients - l.senders) as f64),
            l.senders,
            p.lines,
            thousands(l.size as f64),
            p.bursts,
            p.pause
        );
        s.push_str(&self.login.text());
        if self.rounds.is_empty() {
            return s;
        }
        for (k, r) in self.rounds.iter().enumerate() {
            let _ = writeln!(s, "{}", r.short(k + 1));
        }
        if self.rounds.len() < self.plan.bursts as usize {
            let _ = writeln!(
                s,
                "  stopped     after {} of {} bursts: nobody left in the room",
                self.rounds.len(),
                self.plan.bursts
            );
        }
        let _ = writeln!(
            s,
            "  delivered   {} of {} (lost {}, reordered {}, refused {})",
            thousands(self.received() as f64),
            thousands(self.expected() as f64),
            thousands(self.lost() as f64),
            self.reordered,
            self.refused
        );
        let _ = writeln!(
            s,
            "  throughput  {} deliveries/s ({:.0} MB/s) while a burst was in flight ({:.3} s in all)",
            thousands(self.rate()),
            self.rate() * l.size as f64 / 1e6,
            self.busy_s()
        );
        let _ = writeln!(
            s,
            "  latency     p50 {}  p99 {}  max {}  (from the paste to the read; {} deliveries)",
            dur(self.p50),
            dur(self.p99),
            dur(self.max),
            thousands(self.samples as f64)
        );
        s.push_str(&self.drops_text());
        let _ = writeln!(s, "  order       {}", self.order_text());
        let _ = writeln!(
            s,
            "  CPU         server {:.2} s while bursts were in flight ({:.0} % of a core); bench {:.2} s in all",
            self.server_cpu(),
            100.0 * self.server_cpu() / self.busy_s(),
            self.bench_cpu
        );
        let _ = writeln!(s, "  loadavg     {}", self.loadavg);
        if let (false, Some(e)) = (self.ok(), &self.first_error) {
            let _ = writeln!(s, "  first error {e}");
        }
        s
    }

    fn drops_text(&self) -> String {
        let n = thousands(self.load.clients as f64);
        if self.dropped == 0 {
            return format!("  dropped     none of {n} connections\n");
        }
        let mut s = format!(
            "  dropped     {} of {n} connections:\n",
            thousands(self.dropped as f64)
        );
        for (why, count) in &self.drops.reasons {
            let _ = writeln!(s, "              {} {why}", thousands(*count as f64));
        }
        s
    }

    fn order_text(&self) -> String {
        let n = thousands(self.load.clients as f64);
        let lines = thousands(self.lines() as f64);
        if self.same_order() {
            return format!("all {n} users got all {lines} lines, in one and the same order");
        }
        let got = match self.complete {
            0 => format!("none of {n} users got all {lines} lines"),
            k => format!(
                "{} of {n} users got all {lines} lines, in {} different order(s)",
                thousands(k as f64),
                self.orders
            ),
        };
        format!(
            "{got}; {} lines came after a later line of their sender",
            self.reordered
        )
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        let reasons: Vec<String> = self
            .drops
            .reasons
            .iter()
            .map(|(why, n)| format!("{{\"reason\":{},\"count\":{n}}}", jstr(why)))
            .collect();
        let rounds: Vec<String> = self.rounds.iter().map(Round::json).collect();
        format!(
            "{{\"scenario\":\"burst\",\"readers\":{},\"senders\":{},\"lines_per_paste\":{},\"size\":{},\"bursts\":{},\"pause_s\":{},\"lines\":{},\"expected\":{},\"received\":{},\"lost\":{},\"reordered\":{},\"refused\":{},\"dropped\":{},\"drop_reasons\":[{}],\"complete\":{},\"orders\":{},\"same_order\":{},\"deliveries_per_s\":{},\"busy_s\":{},\"p50_ns\":{},\"p99_ns\":{},\"max_ns\":{},\"samples\":{},\"server_cpu_s\":{},\"bench_cpu_s\":{},\"loadavg\":{},\"ok\":{},\"login\":{},\"rounds\":[{}]}}",
            self.load.clients - self.load.senders,
            self.load.senders,
            self.plan.lines,
            self.load.size,
            self.plan.bursts,
            jnum(self.plan.pause),
            self.lines(),
            self.expected(),
            self.received(),
            self.lost(),
            self.reordered,
            self.refused,
            self.dropped,
            reasons.join(","),
            self.complete,
            self.orders,
            self.same_order(),
            jnum(self.rate()),
            jnum(self.busy_s()),
            self.p50,
            self.p99,
            self.max,
            self.samples,
            jnum(self.server_cpu()),
            jnum(self.bench_cpu),
            jstr(&self.loadavg),
            self.ok(),
            self.login.json(),
            rounds.join(",")
        )
    }
}
