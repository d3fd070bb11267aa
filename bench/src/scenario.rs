//! The scenarios and their reports.
//!
//! - [`fanout`]: N clients log in, S of them send R lines/s in total, evenly
//!   spaced and open loop, for D seconds after a warm-up; every line goes to
//!   all N. Reports deliveries/s, loss, latency percentiles, the server's CPU
//!   per delivery and the bench's own CPU.
//! - [`ramp`]: the same at rising rates (then bisecting) on one set of
//!   clients: the highest rate with p99 <= the limit and nothing lost.
//! - [`connect`]: N clients log in (all at once, or at most K at a time:
//!   a reconnect storm), each reading every join notice the server sends;
//!   then the server's RSS per idle connection, then the time for one line
//!   to reach all N.
//! - [`floor`]: `connect`'s single lines through a bare broadcaster.
//!
//! The `burst` scenario has its own module, [`crate::burst`]; it shares the
//! login, drain and report helpers here.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use super::fleet::{Counters, Fleet};
use super::sys::{self, now_ns};
use super::Target;

/// The shape of a load.
#[derive(Debug, Clone)]
pub struct Load {
    /// Clients logged in (senders included).
    pub clients: usize,
    /// How many of them send.
    pub senders: usize,
    /// Bytes of every chat line as delivered (`NAME: TEXT\n`).
    pub size: usize,
    /// Seconds sent before measuring starts.
    pub warmup: f64,
    /// Seconds measured.
    pub duration: f64,
    /// At most this many seconds to wait for lines still in flight.
    pub drain: f64,
    /// Clients logging in at the same time, at most (0: all at once).
    pub inflight: usize,
    /// Seconds the login may take before the run is given up.
    pub login_limit: f64,
    /// Prefix of the user names.
    pub prefix: String,
    /// Chat lines another user says before the fleet logs in, so the room
    /// has history to replay (`connect --seed`).
    pub seed: usize,
    /// Every client resumes after this id (`/since ID` before its name).
    pub since: Option<u64>,
    /// The share of clients (senders included, spread evenly) that talk
    /// WebSocket to the server's web port: 0 none, 1 all.
    pub ws_share: f64,
    /// Every client fingerprints the order of the lines it gets, so the
    /// run can tell whether all saw one order (`fanout`).
    pub check_order: bool,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            clients: 1000,
            senders: 10,
            size: 64,
            warmup: 1.0,
            duration: 10.0,
            drain: 30.0,
            inflight: 0,
            login_limit: 120.0,
            prefix: "b".into(),
            seed: 0,
            since: None,
            ws_share: 0.0,
            check_order: false,
        }
    }
}

/// Result of logging a fleet in.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// Clients asked for.
    pub clients: usize,
    /// Clients in the room.
    pub logged_in: usize,
    /// Seconds until the last client saw its own join notice.
    pub all_in_s: f64,
    /// Seconds until the last join notice was read by everyone.
    pub all_notices_s: f64,
    /// Clients logging in at the same time, at most (0: no cap).
    pub inflight: usize,
    /// Clients that talk WebSocket.
    pub ws_clients: usize,
    /// Join notices read.
    pub joins: u64,
    /// Joins the server announced to everyone: N, or fewer when it stops
    /// announcing joins in a large room (see [`Fleet::announced`]).
    pub announced: usize,
    /// The join notices that makes: `N(N+1)/2` when every join went to
    /// everyone, `M(M+1)/2 + (N - M)` when only the first M did.
    pub joins_expected: u64,
    /// Login failures (refused, closed, connect errors).
    pub errors: usize,
    /// The first thing that went wrong.
    pub first_error: Option<String>,
    /// Server CPU seconds during the login.
    pub server_cpu: f64,
    /// Bench CPU seconds during the login.
    pub bench_cpu: f64,
    /// History lines replayed to the clients at login (between
    /// `History (K lines):` and `End of history.`), over all clients.
    pub replayed: u64,
    /// The clients spoke TLS.
    pub tls: bool,
}

impl Login {
    /// Everyone in, every notice read, nothing failed.
    pub fn ok(&self) -> bool {
        self.logged_in == self.clients && self.joins == self.joins_expected && self.errors == 0
    }
}

/// One rate held for a while.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Lines per second offered, over all senders.
    pub rate: f64,
    /// Clients in the room when the step began (receivers of every line).
    pub receivers: usize,
    /// Lines sent.
    pub lines: u64,
    /// Deliveries that should happen: lines x receivers.
    pub expected: u64,
    /// Deliveries that happened.
    pub received: u64,
    /// `expected - received`.
    pub lost: u64,
    /// Lines that came after a later line of the same sender.
    pub reordered: u64,
    /// "too fast" refusals (rate limit on in the server).
    pub refused: u64,
    /// Our clients the server dropped during the step.
    pub dropped: usize,
    /// Deliveries per second offered: rate x receivers.
    pub offered: f64,
    /// Deliveries read inside the measuring window, per second.
    pub throughput: f64,
    /// Latency from scheduled send to read, ns.
    pub p50: u64,
    /// 99th percentile, ns.
    pub p99: u64,
    /// 99.9th percentile, ns.
    pub p999: u64,
    /// Largest, ns.
    pub max: u64,
    /// Lines in the latency sample.
    pub samples: u64,
    /// Server CPU seconds from window start to the end of the drain.
    pub server_cpu: f64,
    /// Deliveries read over the same span.
    pub deliveries_since: u64,
    /// Seconds of that span.
    pub span: f64,
    /// Bench CPU seconds over the same span.
    pub bench_cpu: f64,
    /// A cluster's Redis: CPU seconds over the same span (`INFO cpu`), NaN
    /// without one.
    pub redis_cpu: f64,
    /// A cluster's Redis: `EVAL`s it ran over the same span (one per server
    /// per loop turn with lines to order).
    pub redis_evals: u64,
    /// Lines sent from the window's start on (what Redis ordered in the
    /// span, give or take the warm-up's last lines).
    pub lines_since: u64,
    /// How late the bench wrote lines: 99th percentile and max, ns.
    pub lag_p99: u64,
    /// Largest send lag, ns.
    pub lag_max: u64,
    /// `/proc/loadavg` when the step ended.
    pub load: String,
    /// The first thing that went wrong.
    pub first_error: Option<String>,
}

impl Step {
    /// Server CPU microseconds per delivered line.
    pub fn us_per_delivery(&self) -> f64 {
        if self.deliveries_since == 0 {
            return f64::NAN;
        }
        self.server_cpu * 1e6 / self.deliveries_since as f64
    }

    /// Redis CPU microseconds per line ordered (NaN without Redis).
    pub fn redis_us_per_line(&self) -> f64 {
        if self.lines_since == 0 {
            return f64::NAN;
        }
        self.redis_cpu * 1e6 / self.lines_since as f64
    }

    /// What Redis did, for the reports: empty without Redis.
    fn redis_text(&self) -> String {
        if self.redis_cpu.is_nan() {
            return String::new();
        }
        let per_eval = if self.redis_evals == 0 {
            f64::NAN
        } else {
            self.lines_since as f64 / self.redis_evals as f64
        };
        format!(
            "Redis {:.0} % core, {:.2} µs/line, {:.1} lines/EVAL",
            100.0 * self.redis_cpu / self.span,
            self.redis_us_per_line(),
            per_eval
        )
    }

    /// Nothing lost, dropped, refused or out of order.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.dropped == 0 && self.reordered == 0 && self.refused == 0
    }

    /// Clean, and p99 within `limit_ns`.
    pub fn passes(&self, limit_ns: u64) -> bool {
        self.clean() && self.p99 <= limit_ns
    }
}

/// Result of `fanout`.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// The load.
    pub load: Load,
    /// The login before sending.
    pub login: Login,
    /// The measured run (absent if the login failed).
    pub step: Option<Step>,
    /// With `load.check_order`: clients that got every line, and how many
    /// distinct orders they saw (1: one and the same order).
    pub order: Option<(usize, usize)>,
}

/// Result of `ramp`.
#[derive(Debug, Clone)]
pub struct Ramp {
    /// The load (its rate varies).
    pub load: Load,
    /// The p99 limit, ns.
    pub limit_ns: u64,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// Login failures (fresh clients are logged in after a step drops any).
    pub login: Login,
}

impl Ramp {
    /// The passing step with the highest rate.
    pub fn best(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.passes(self.limit_ns))
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }

    /// The step with the highest throughput (passing or not): saturation.
    pub fn busiest(&self) -> Option<&Step> {
        self.steps
            .iter()
            .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
    }
}

/// Result of `connect`.
#[derive(Debug, Clone)]
pub struct Connect {
    /// The login of N clients at once.
    pub login: Login,
    /// Server RSS before connecting, KiB.
    pub rss_before_kib: u64,
    /// Server RSS after everyone is in and idle, KiB.
    pub rss_after_kib: u64,
    /// Seconds waited after the login before reading RSS.
    pub settle_s: f64,
    /// Milliseconds for each single line to reach all N.
    pub line_ms: Vec<f64>,
    /// Lines that did not reach everyone.
    pub line_lost: u64,
    /// Clients dropped by the server after login.
    pub dropped: usize,
    /// Server CPU seconds per single line (its broadcast and writes).
    pub line_server_cpu: f64,
    /// Bench CPU seconds per single line (reading it on every client).
    pub line_bench_cpu: f64,
    /// `/proc/loadavg` at the end.
    pub loadavg: String,
}

impl Connect {
    /// (RSS after - RSS before) / N, bytes.
    pub fn rss_per_conn(&self) -> f64 {
        let n = self.login.clients.max(1) as f64;
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) * 1024.0 / n
    }

    /// Median of the single-line times, ms.
    pub fn line_p50(&self) -> f64 {
        let mut v = self.line_ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// Slowest single-line time, ms.
    pub fn line_max(&self) -> f64 {
        self.line_ms.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// Seconds as nanoseconds.
pub(crate) fn secs(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// The server's CPU seconds so far, every server of a cluster summed
/// (NaN if unreadable).
pub(crate) fn server_cpu(t: &Target) -> f64 {
    t.pids()
        .iter()
        .map(|&pid| sys::process_cpu(pid).unwrap_or(f64::NAN))
        .sum()
}

/// A cluster's Redis so far: CPU seconds and `EVAL` calls (NaN and 0
/// without one).
pub(crate) fn redis_stats(t: &Target) -> (f64, u64) {
    match t.redis {
        Some(r) => (r.cpu(), r.evals()),
        None => (f64::NAN, 0),
    }
}

/// Runs the fleet until it has read `chat` chat lines in all, nothing came
/// for 2 s, or `drain_s` seconds passed.
pub(crate) fn drain(fleet: &mut Fleet, chat: u64, drain_s: f64) -> io::Result<()> {
    let cap = now_ns() + secs(drain_s);
    let mut progress = (fleet.c.chat, now_ns());
    while fleet.c.chat < chat {
        let now = now_ns();
        if fleet.c.chat != progress.0 {
            progress = (fleet.c.chat, now);
        } else if now - progress.1 > 2_000_000_000 || now >= cap {
            break;
        }
        fleet.turn(Some(cap))?;
    }
    Ok(())
}

/// Runs the fleet (reading whatever comes) for `s` seconds.
pub(crate) fn idle(fleet: &mut Fleet, s: f64) -> io::Result<()> {
    let until = now_ns() + secs(s);
    while now_ns() < until {
        fleet.turn(Some(until))?;
    }
    Ok(())
}

/// Logs `load.clients` clients in; the login report.
pub(crate) fn log_in(fleet: &mut Fleet, target: &Target, load: &Load) -> Login {
    let cpu0 = server_cpu(target);
    let me0 = sys::self_cpu();
    let t0 = now_ns();
    let before = fleet.c.clone();
    let n = load.clients;
    fleet.login(n, Duration::from_secs_f64(load.login_limit));
    let c = &fleet.c;
    let announced = fleet.announced();
    Login {
        clients: n,
        logged_in: c.logged_in - before.logged_in,
        all_in_s: c.last_login_ns.saturating_sub(t0) as f64 / 1e9,
        all_notices_s: c.last_join_ns.saturating_sub(t0) as f64 / 1e9,
        inflight: load.inflight,
        ws_clients: fleet.ws_clients(),
        joins: c.joins - before.joins,
        announced,
        joins_expected: fleet.joins_for(n, announced),
        errors: c.login_errors - before.login_errors,
        first_error: c.first_error.clone(),
        server_cpu: server_cpu(target) - cpu0,
        bench_cpu: sys::self_cpu() - me0,
        replayed: c.replayed - before.replayed,
        tls: fleet.is_tls(),
    }
}

/// Sends `rate` lines/s for `load.warmup + load.duration` seconds from the
/// fleet's senders, then waits for every delivery (at most `load.drain`
/// seconds, or until 2 s pass with none). `seq` holds each sender's next
/// sequence number and is advanced.
fn run_step(
    fleet: &mut Fleet,
    target: &Target,
    load: &Load,
    rate: f64,
    seq: &mut [u32],
) -> io::Result<Step> {
    let senders = load.senders;
    let receivers = fleet.live();
    let t0 = now_ns() + 20_000_000;
    let interval = 1e9 / rate;
    let total = ((load.warmup + load.duration) * rate).round() as u64;
    let sched = |k: u64| t0 + (k as f64 * interval) as u64;
    let from = t0 + secs(load.warmup);
    let to = from + secs(load.duration);
    fleet.measure(from, to);
    for (s, &q) in seq.iter().enumerate() {
        fleet.expect_from(s, q);
    }
    let before: Counters = fleet.c.clone();
    let mut at_from: Option<(f64, f64, u64, (f64, u64))> = None;
    let mut k = 0u64;
    loop {
        let now = now_ns();
        if at_from.is_none() && now >= from {
            at_from = Some((
                server_cpu(target),
                sys::self_cpu(),
                now,
                redis_stats(target),
            ));
        }
        while k < total && sched(k) <= now {
            let s = (k % senders as u64) as usize;
            let q = seq[s] + (k / senders as u64) as u32;
            fleet.send_line(s, q, sched(k));
            k += 1;
        }
        if k >= total && now >= to {
            break;
        }
        let mut next = if k < total { sched(k) } else { to };
        if at_from.is_none() {
            next = next.min(from);
        }
        fleet.turn(Some(next))?;
    }
    for (s, q) in seq.iter_mut().enumerate() {
        // Sender s sent lines k = s, s + S, s + 2S, ... below `total`.
        *q += ((total + (senders - s - 1) as u64) / senders as u64) as u32;
    }
    let expected = total * receivers as u64;
    drain(fleet, before.chat + expected, load.drain)?;
    let end = now_ns();
    let (cpu0, me0, t_from, (redis_cpu0, evals0)) =
        at_from.unwrap_or((f64::NAN, f64::NAN, from, (f64::NAN, 0)));
    let (redis_cpu1, evals1) = redis_stats(target);
    let c = &fleet.c;
    let received = c.chat - before.chat;
    let h = &fleet.latency;
    Ok(Step {
        rate,
        receivers,
        lines: total,
        expected,
        received,
        lost: expected.saturating_sub(received),
        reordered: c.reordered - before.reordered,
        refused: c.refused - before.refused,
        dropped: c.dropped - before.dropped,
        offered: rate * receivers as f64,
        throughput: c.chat_in_window as f64 / load.duration,
        p50: h.quantile(0.5),
        p99: h.quantile(0.99),
        p999: h.quantile(0.999),
        max: h.max(),
        samples: h.count(),
        server_cpu: server_cpu(target) - cpu0,
        deliveries_since: c.chat_since_window,
        span: (end - t_from) as f64 / 1e9,
        bench_cpu: sys::self_cpu() - me0,
        redis_cpu: redis_cpu1 - redis_cpu0,
        redis_evals: evals1.saturating_sub(evals0),
        lines_since: (load.duration * rate).round() as u64,
        lag_p99: fleet.send_lag.quantile(0.99),
        lag_max: fleet.send_lag.max(),
        load: sys::loadavg(),
        first_error: c.first_error.clone(),
    })
}

/// Checks that `load`'s senders and line size make sense.
pub(crate) fn check_load(load: &Load) -> io::Result<()> {
    if load.senders == 0 || load.senders > load.clients {
        return Err(io::Error::other("need 1 <= senders <= clients"));
    }
    let min = Fleet::min_line_size(&load.prefix, load.senders);
    if load.size < min {
        return Err(io::Error::other(format!(
            "--size must be at least {min} bytes (name, \": \", 24 digits, LF)"
        )));
    }
    Ok(())
}

/// The clients `load` describes, not yet connected, against `target`.
pub(crate) fn fleet_for(target: &Target, load: &Load) -> io::Result<Fleet> {
    let fleet = Fleet::new(
        &target.addrs(),
        &load.prefix,
        load.senders,
        load.size,
        load.inflight,
    )?
    .tls(target.tls.clone());
    let fleet = if load.check_order {
        fleet.track_order()
    } else {
        fleet
    };
    if load.ws_share <= 0.0 {
        return Ok(fleet);
    }
    if target.tls.is_some() || !target.more.is_empty() {
        return Err(io::Error::other(
            "WebSocket clients talk to one plain server: not with --tls or --cluster",
        ));
    }
    let web = target.web.ok_or_else(|| {
        io::Error::other("WebSocket clients need the server's web port (--web-addr)")
    })?;
    Ok(fleet.websocket(web, load.ws_share))
}

/// The `fanout` scenario at `rate` lines/s.
pub fn fanout(target: &Target, load: &Load, rate: f64) -> io::Result<Fanout> {
    check_load(load)?;
    let mut fleet = fleet_for(target, load)?;
    let login = log_in(&mut fleet, target, load);
    let step = if login.ok() {
        let mut seq = vec![0u32; load.senders];
        Some(run_step(&mut fleet, target, load, rate, &mut seq)?)
    } else {
        None
    };
    let order = match &step {
        Some(s) if load.check_order => Some(fleet.orders(s.lines)),
        _ => None,
    };
    fleet.close();
    Ok(Fanout {
        load: load.clone(),
        login,
        step,
        order,
    })
}

/// How `ramp` searches.
#[derive(Debug, Clone)]
pub struct RampPlan {
    /// First rate, lines/s.
    pub from: f64,
    /// Rate multiplier while every step passes.
    pub factor: f64,
    /// Stop bisecting when fail/pass is below 1 + this.
    pub precision: f64,
    /// Never offer more than this, lines/s.
    pub max_rate: f64,
    /// At most this many steps.
    pub max_steps: usize,
    /// The p99 limit, ns.
    pub limit_ns: u64,
}

impl Default for RampPlan {
    fn default() -> Self {
        RampPlan {
            from: 500.0,
            factor: 2.0,
            precision: 0.05,
            max_rate: 1e6,
            max_steps: 14,
            limit_ns: 50_000_000,
        }
    }
}

/// The `ramp` scenario; `each` is called with every step as it finishes.
pub fn ramp(
    target: &Target,
    load: &Load,
    plan: &RampPlan,
    mut each: impl FnMut(&Step),
) -> io::Result<Ramp> {
    check_load(load)?;
    let mut generation = 0;
    let mut fleet_load = load.clone();
    let mut fleet = fleet_for(target, load)?;
    let mut login = log_in(&mut fleet, target, &fleet_load);
    let mut seq = vec![0u32; load.senders];
    let mut steps = Vec::new();
    let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = plan.from;
    while login.ok() && steps.len() < plan.max_steps {
        let step = run_step(&mut fleet, target, load, rate, &mut seq)?;
        each(&step);
        let ok = step.passes(plan.limit_ns);
        let damaged = step.dropped > 0 || fleet.live() < load.clients;
        steps.push(step);
        if ok {
            pass = Some(pass.map_or(rate, |p: f64| p.max(rate)));
        } else {
            fail = Some(fail.map_or(rate, |f: f64| f.min(rate)));
        }
        rate = match (pass, fail) {
            (Some(p), None) => p * plan.factor,
            (None, Some(f)) => f / plan.factor,
            (Some(p), Some(f)) if f / p > 1.0 + plan.precision => (p * f).sqrt(),
            _ => break,
        };
        if rate > plan.max_rate || rate < 1.0 {
            break;
        }
        if damaged {
            // Some clients were dropped: start over with fresh ones.
            fleet.close();
            generation += 1;
            fleet_load.prefix = format!("g{generation}{}", load.prefix);
            fleet = fleet_for(target, &fleet_load)?;
            seq.iter_mut().for_each(|q| *q = 0);
            let again = log_in(&mut fleet, target, &fleet_load);
            login.errors += again.errors;
            if !again.ok() {
                login.first_error = again.first_error;
                login.logged_in = again.logged_in;
                break;
            }
        }
    }
    fleet.close();
    Ok(Ramp {
        load: load.clone(),
        limit_ns: plan.limit_ns,
        steps,
        login,
    })
}

/// The `connect` scenario: `load.clients` log in at once; RSS after
/// `settle` seconds; then `lines` single lines, one at a time.
pub fn connect(target: &Target, load: &Load, settle: f64, lines: usize) -> io::Result<Connect> {
    connect_with(target, load, settle, lines, false)
}

/// Gives the room `lines` lines of history before the fleet comes: a user
/// `seed` logs in, says them, and leaves (so the history holds its join,
/// its lines and its leave notice, ids 1 to `lines` + 2 in a new room).
fn seed_history(target: &Target, lines: usize) -> io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(target.addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    let mut until = |want: &str| -> io::Result<()> {
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(io::Error::other(format!("seed: EOF before {want:?}")));
            }
            if line.trim_end() == want {
                return Ok(());
            }
        }
    };
    s.write_all(b"seed\n")?;
    until("[SERVER]: seed joined the chat!")?;
    let mut text = String::new();
    for k in 0..lines {
        let _ = writeln!(
            text,
            "history line {k} of {lines}, said before the fleet came"
        );
    }
    s.write_all(text.as_bytes())?;
    until(&format!(
        "seed: history line {} of {lines}, said before the fleet came",
        lines - 1
    ))?;
    s.write_all(b"/quit\n")?;
    until("[SERVER]: Goodbye, seed!")
}

/// `connect` against the bare broadcaster of [`super::ideal`]: no login,
/// so only the connections and the single lines are measured.
pub fn floor(target: &Target, load: &Load, lines: usize) -> io::Result<Connect> {
    connect_with(target, load, 0.5, lines, true)
}

fn connect_with(
    target: &Target,
    load: &Load,
    settle: f64,
    lines: usize,
    raw: bool,
) -> io::Result<Connect> {
    let mut load = load.clone();
    load.senders = 1;
    check_load(&load)?;
    if load.seed > 0 {
        if target.tls.is_some() {
            return Err(io::Error::other("--seed talks plain TCP: not with --tls"));
        }
        seed_history(target, load.seed)?;
    }
    let mut fleet = fleet_for(target, &load)?.since(load.since);
    if raw {
        fleet = fleet.raw();
    }
    let rss_before_kib = sys::process_rss_kib(target.pid)?;
    let login = log_in(&mut fleet, target, &load);
    let n = load.clients as u64;
    let mut out = Connect {
        login,
        rss_before_kib,
        rss_after_kib: 0,
        settle_s: settle,
        line_ms: Vec::new(),
        line_lost: 0,
        dropped: 0,
        line_server_cpu: f64::NAN,
        line_bench_cpu: f64::NAN,
        loadavg: String::new(),
    };
    if out.login.ok() {
        idle(&mut fleet, settle)?;
        out.rss_after_kib = sys::process_rss_kib(target.pid)?;
        fleet.measure(0, u64::MAX);
        let (cpu0, me0) = (server_cpu(target), sys::self_cpu());
        for j in 0..lines {
            let before = fleet.c.chat;
            let t = now_ns();
            fleet.send_line(0, j as u32, t);
            let cap = t + secs(10.0);
            while fleet.c.chat - before < n && now_ns() < cap {
                fleet.turn(Some(cap))?;
            }
            let got = fleet.c.chat - before;
            out.line_lost += n - got.min(n);
            if got >= n {
                out.line_ms
                    .push(fleet.c.last_chat_ns.saturating_sub(t) as f64 / 1e6);
            }
            // A short pause, so each line meets an idle server.
            idle(&mut fleet, 0.2)?;
        }
        let k = lines.max(1) as f64;
        out.line_server_cpu = (server_cpu(target) - cpu0) / k;
        out.line_bench_cpu = (sys::self_cpu() - me0) / k;
    }
    out.dropped = fleet.c.dropped;
    out.loadavg = sys::loadavg();
    fleet.close();
    Ok(out)
}

// ----------------------------------------------------------------------------
// Reports.

/// `1234567` as `1,234,567`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "?".into();
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Nanoseconds as a readable duration (µs or ms).
pub fn dur(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else if ns < 10_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} s", ns as f64 / 1e9)
    }
}

/// `s` as a JSON string.
pub(crate) fn jstr(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `v` as a JSON number (`null` if not finite).
pub(crate) fn jnum(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

impl Login {
    /// A readable report.
    pub fn text(&self) -> String {
        let cap = match self.inflight {
            0 => " (all at once)".to_string(),
            k => format!(" (at most {} logging in at a time)", thousands(k as f64)),
        };
        let ws = match self.ws_clients {
            0 => String::new(),
            k if k == self.clients => " (all over WebSocket)".to_string(),
            k => format!(" ({} over WebSocket)", thousands(k as f64)),
        };
        let mut s = format!(
            "  login       {} of {}{ws} in after {:.3} s{cap}; all {} join notices read after {:.3} s\n",
            thousands(self.logged_in as f64),
            thousands(self.clients as f64),
            self.all_in_s,
            thousands(self.joins as f64),
            self.all_notices_s,
        );
        if self.announced < self.logged_in {
            let _ = writeln!(
                s,
                "              joins announced to everyone: the first {}, later ones only to the newcomer",
                thousands(self.announced as f64)
            );
        }
        if self.replayed > 0 {
            let _ = writeln!(
                s,
                "              history replayed at login: {} lines ({:.1} per client)",
                thousands(self.replayed as f64),
                self.replayed as f64 / self.logged_in.max(1) as f64
            );
        }
        let _ = writeln!(
            s,
            "              server CPU {:.2} s, bench CPU {:.2} s",
            self.server_cpu, self.bench_cpu
        );
        if !self.ok() {
            let _ = writeln!(
                s,
                "  LOGIN FAILED: {} error(s), {} of {} join notices; first: {}",
                self.errors,
                self.joins,
                self.joins_expected,
                self.first_error.as_deref().unwrap_or("-")
            );
        }
        s
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"clients\":{},\"ws_clients\":{},\"logged_in\":{},\"all_in_s\":{},\"all_notices_s\":{},\"inflight\":{},\"joins\":{},\"announced\":{},\"joins_expected\":{},\"errors\":{},\"first_error\":{},\"server_cpu_s\":{},\"bench_cpu_s\":{},\"replayed\":{},\"tls\":{}}}",
            self.clients,
            self.ws_clients,
            self.logged_in,
            jnum(self.all_in_s),
            jnum(self.all_notices_s),
            self.inflight,
            self.joins,
            self.announced,
            self.joins_expected,
            self.errors,
            self.first_error.as_deref().map_or("null".into(), jstr),
            jnum(self.server_cpu),
            jnum(self.bench_cpu),
            self.replayed,
            self.tls,
        )
    }
}

impl Step {
    /// A readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  delivered   {} of {} (lost {}, reordered {}, refused {}, clients dropped {})",
            thousands(self.received as f64),
            thousands(self.expected as f64),
            thousands(self.lost as f64),
            self.reordered,
            self.refused,
            self.dropped
        );
        let _ = writeln!(
            s,
            "  throughput  {} deliveries/s read in the window (offered {})",
            thousands(self.throughput),
            thousands(self.offered)
        );
        let _ = writeln!(
            s,
            "  latency     p50 {}  p99 {}  p99.9 {}  max {}  ({} lines)",
            dur(self.p50),
            dur(self.p99),
            dur(self.p999),
            dur(self.max),
            thousands(self.samples as f64)
        );
        let _ = writeln!(
            s,
            "  server CPU  {:.2} s over {:.2} s ({:.0} % of a core), {:.3} µs per delivery",
            self.server_cpu,
            self.span,
            100.0 * self.server_cpu / self.span,
            self.us_per_delivery()
        );

        let redis = self.redis_text();
        if !redis.is_empty() {
            let _ = writeln!(
                s,
                "  Redis       {:.2} s of CPU, {} EVALs; {redis}",
                self.redis_cpu,
                thousands(self.redis_evals as f64)
            );
        }
        let _ = writeln!(
            s,
            "  bench CPU   {:.2} s ({:.0} % of a core); send lag p99 {}, max {}",
            self.bench_cpu,
            100.0 * self.bench_cpu / self.span,
            dur(self.lag_p99),
            dur(self.lag_max)
        );
        let _ = writeln!(s, "  loadavg     {}", self.load);
        if let (false, Some(e)) = (self.clean(), &self.first_error) {
            let _ = writeln!(s, "  first error {e}");
        }
        s
    }

    /// One line, for the ramp.
    pub fn short(&self, limit_ns: u64) -> String {
        format!(
            "  {:>9} lines/s {:>11} deliveries/s offered, {:>11} read/s; p99 {:>9}, max {:>9}; lost {}, dropped {}; server {:.3} µs/delivery ({:.0} % core), bench {:.0} % core; {}load {}  {}",
            thousands(self.rate),
            thousands(self.offered),
            thousands(self.throughput),
            dur(self.p99),
            dur(self.max),
            thousands(self.lost as f64),
            self.dropped,
            self.us_per_delivery(),
            100.0 * self.server_cpu / self.span,
            100.0 * self.bench_cpu / self.span,
            match self.redis_text() {
                r if r.is_empty() => r,
                r => format!("{r}; "),
            },
            self.load,
            if self.passes(limit_ns) { "pass" } else { "FAIL" }
        )
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"rate\":{},\"receivers\":{},\"lines\":{},\"expected\":{},\"received\":{},\"lost\":{},\"reordered\":{},\"refused\":{},\"dropped\":{},\"offered_per_s\":{},\"deliveries_per_s\":{},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},\"samples\":{},\"server_cpu_s\":{},\"span_s\":{},\"us_per_delivery\":{},\"bench_cpu_s\":{},\"redis_cpu_s\":{},\"redis_evals\":{},\"redis_us_per_line\":{},\"send_lag_p99_ns\":{},\"send_lag_max_ns\":{},\"loadavg\":{}}}",
            jnum(self.rate),
            self.receivers,
            self.lines,
            self.expected,
            self.received,
            self.lost,
            self.reordered,
            self.refused,
            self.dropped,
            jnum(self.offered),
            jnum(self.throughput),
            self.p50,
            self.p99,
            self.p999,
            self.max,
            self.samples,
            jnum(self.server_cpu),
            jnum(self.span),
            jnum(self.us_per_delivery()),
            jnum(self.bench_cpu),
            jnum(self.redis_cpu),
            self.redis_evals,
            jnum(self.redis_us_per_line()),
            self.lag_p99,
            self.lag_max,
            jstr(&self.load),
        )
    }
}

impl Fanout {
    /// Logged in, and the step lost nothing.
    pub fn ok(&self) -> bool {
        self.login.ok()
            && self.step.as_ref().is_some_and(Step::clean)
            && self.same_order() != Some(false)
    }

    /// With order checking: whether every client got every line, all in
    /// one order.
    pub fn same_order(&self) -> Option<bool> {
        self.order
            .map(|(complete, orders)| complete == self.load.clients && orders == 1)
    }

    /// A readable report.
    pub fn text(&self, rate: f64) -> String {
        let l = &self.load;
        let mut s = format!(
            "fanout: {} clients, {} senders, {} lines/s in total, {} B lines, {} s (+{} s warm-up)\n",
            thousands(l.clients as f64),
            l.senders,
            thousands(rate),
            l.size,
            l.duration,
            l.warmup
        );
        s.push_str(&self.login.text());
        if let Some(step) = &self.step {
            s.push_str(&step.text());
        }
        if let Some((complete, orders)) = self.order {
            let _ = writeln!(
                s,
                "  order       {} of {} clients got every line; {} distinct order(s){}",
                thousands(complete as f64),
                thousands(self.load.clients as f64),
                orders,
                if self.same_order() == Some(true) {
                    ": one order for all"
                } else {
                    ""
                }
            );
        }
        s
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        format!(
            "{{\"scenario\":\"fanout\",\"clients\":{},\"senders\":{},\"size\":{},\"duration_s\":{},\"warmup_s\":{},\"login\":{},\"run\":{},\"complete\":{},\"orders\":{},\"same_order\":{},\"ok\":{}}}",
            self.load.clients,
            self.load.senders,
            self.load.size,
            jnum(self.load.duration),
            jnum(self.load.warmup),
            self.login.json(),
            self.step.as_ref().map_or("null".into(), Step::json),
            self.order.map_or("null".into(), |o| o.0.to_string()),
            self.order.map_or("null".into(), |o| o.1.to_string()),
            self.same_order().map_or("null".into(), |b| b.to_string()),
            self.ok()
        )
    }
}

impl Ramp {
    /// A readable summary (the steps were printed as they ran).
    pub fn text(&self) -> String {
        let mut s = String::new();
        match self.best() {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "ramp result: {} lines/s = {} deliveries/s with p99 {} <= {} and nothing lost ({:.3} µs server CPU per delivery)",
                    thousands(b.rate),
                    thousands(b.offered),
                    dur(b.p99),
                    dur(self.limit_ns),
                    b.us_per_delivery()
                );
            }
            None => {
                let _ = writeln!(s, "ramp result: no rate passed");
            }
        }
        if let Some(b) = self.busiest() {
            let _ = writeln!(
                s,
                "saturation:  most read {} deliveries/s (at {} lines/s offered), {:.3} µs server CPU per delivery, server {:.0} % of a core",
                thousands(b.throughput),
                thousands(b.rate),
                b.us_per_delivery(),
                100.0 * b.server_cpu / b.span
            );
        }
        if !self.login.ok() {
            s.push_str(&self.login.text());
        }
        s
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        let steps: Vec<String> = self.steps.iter().map(Step::json).collect();
        format!(
            "{{\"scenario\":\"ramp\",\"clients\":{},\"senders\":{},\"size\":{},\"duration_s\":{},\"p99_limit_ns\":{},\"best_rate\":{},\"best_deliveries_per_s\":{},\"steps\":[{}],\"login\":{}}}",
            self.load.clients,
            self.load.senders,
            self.load.size,
            jnum(self.load.duration),
            self.limit_ns,
            self.best().map_or("null".into(), |b| jnum(b.rate)),
            self.best().map_or("null".into(), |b| jnum(b.offered)),
            steps.join(","),
            self.login.json()
        )
    }
}

impl Connect {
    /// Everyone in, every line to everyone, nobody dropped.
    pub fn ok(&self) -> bool {
        self.login.ok() && self.line_lost == 0 && self.dropped == 0
    }

    /// A readable report.
    pub fn text(&self) -> String {
        let mut s = format!(
            "connect: {} clients\n",
            thousands(self.login.clients as f64)
        );
        s.push_str(&self.login.text());
        if self.login.ok() {
            let _ = writeln!(
                s,
                "  memory      server RSS {} KiB before, {} KiB after ({:.1} s idle): {:.0} B per connection",
                thousands(self.rss_before_kib as f64),
                thousands(self.rss_after_kib as f64),
                self.settle_s,
                self.rss_per_conn()
            );
            let times: Vec<String> = self.line_ms.iter().map(|t| format!("{t:.1}")).collect();
            let _ = writeln!(
                s,
                "  one line    to all {} in ms: {} (median {:.1}, max {:.1}); lost {}, dropped {}",
                thousands(self.login.clients as f64),
                times.join(", "),
                self.line_p50(),
                self.line_max(),
                self.line_lost,
                self.dropped
            );
            let _ = writeln!(
                s,
                "              per line: server CPU {:.1} ms, bench CPU {:.1} ms",
                self.line_server_cpu * 1e3,
                self.line_bench_cpu * 1e3
            );
        }
        let _ = writeln!(s, "  loadavg     {}", self.loadavg);
        s
    }

    /// As a JSON object.
    pub fn json(&self) -> String {
        let times: Vec<String> = self.line_ms.iter().map(|t| jnum(*t)).collect();
        format!(
            "{{\"scenario\":\"connect\",\"login\":{},\"rss_before_kib\":{},\"rss_after_kib\":{},\"rss_per_conn_bytes\":{},\"line_ms\":[{}],\"line_lost\":{},\"dropped\":{},\"line_server_cpu_s\":{},\"line_bench_cpu_s\":{},\"loadavg\":{},\"ok\":{}}}",
            self.login.json(),
            self.rss_before_kib,
            self.rss_after_kib,
            jnum(self.rss_per_conn()),
            times.join(","),
            self.line_lost,
            self.dropped,
            jnum(self.line_server_cpu),
            jnum(self.line_bench_cpu),
            jstr(&self.loadavg),
            self.ok()
        )
    }
}
