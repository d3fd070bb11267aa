//! The `chat-bench` command line: flags, scenarios and the runs behind
//! them (the binary only parses and calls [`main`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::burst::{self, BurstPlan};
use crate::scenario::{self, dur, thousands, Load, RampPlan};
use crate::{default_server_path, sys, ClusterProc, ServerProc, Target};
use clap::{Args, Parser, Subcommand};

/// Benchmarks chat-server with many clients in one thread (mio, loopback).
///
/// By default it starts the release `chat-server` next to its own executable
/// (pinned to --server-cpu with taskset; the bench pins itself to
/// --bench-cpu). With --addr and --pid it measures a server already running
/// (start it with --rate 0, a large --max-clients and --idle-timeout).
#[derive(Parser, Debug)]
#[command(name = "chat-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    server: ServerOpts,
    /// Print one JSON object instead of the readable report.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct ServerOpts {
    /// Start the server (the default when --addr is not given).
    #[arg(long, global = true, conflicts_with = "addr")]
    spawn: bool,
    /// Address of a running server to measure instead.
    #[arg(long, global = true, requires = "pid")]
    addr: Option<SocketAddr>,
    /// Process id of that server (for its CPU time and RSS).
    #[arg(long, global = true, requires = "addr")]
    pid: Option<u32>,
    /// Web port of that server, for WebSocket clients (--ws, --ws-share).
    #[arg(long, global = true, requires = "addr")]
    web_addr: Option<SocketAddr>,
    /// The server binary to start.
    #[arg(long, global = true)]
    server: Option<PathBuf>,
    /// Extra argument for a started server (repeatable), e.g.
    /// --server-arg=--announce-limit=0 or --server-arg=--rate=20 (replaces
    /// the bench's --rate 0; likewise --max-clients, --idle-timeout, and -q
    /// for a -v, -q or --log-level given here).
    #[arg(long = "server-arg", global = true, allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Start a cluster instead of one server: a redis-server (on a free
    /// port, nothing kept on disk) and this many servers with --redis
    /// pointing at it, one room; the clients are spread over the servers
    /// (round robin), and Redis's CPU is reported apart. All are pinned to
    /// --server-cpu, so the server side has the one core a server alone
    /// has.
    #[arg(long, global = true, conflicts_with_all = ["addr", "tls"], value_parser = clap::value_parser!(u32).range(1..))]
    cluster: Option<u32>,
    /// CPU the started server is pinned to (with taskset).
    #[arg(long, global = true, default_value_t = 0)]
    server_cpu: usize,
    /// CPU the bench pins itself to.
    #[arg(long, global = true, default_value_t = 1)]
    bench_cpu: usize,
    /// Pin nothing.
    #[arg(long, global = true)]
    no_pin: bool,
    /// Speak TLS: the started server listens only on --tls-port
    /// (--no-plain), with a certificate made for the run; every client
    /// makes a TLS 1.3 handshake and checks that certificate.
    #[arg(long, global = true, conflicts_with = "addr")]
    tls: bool,
}

/// Which transport the clients use.
#[derive(Args, Debug, Clone)]
struct TransportOpts {
    /// Every client talks WebSocket (GET /ws on the server's web port)
    /// instead of lines over TCP.
    #[arg(long)]
    ws: bool,
    /// This share of the clients (0 to 1, spread evenly over them, senders
    /// included) talks WebSocket, the others TCP: 0.5 is half and half.
    #[arg(long, conflicts_with = "ws", value_parser = share)]
    ws_share: Option<f64>,
}

impl TransportOpts {
    /// The share of clients over WebSocket.
    fn share(&self) -> f64 {
        if self.ws {
            1.0
        } else {
            self.ws_share.unwrap_or(0.0)
        }
    }
}

/// Parses a share: a number from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 0 to 1")),
    }
}

#[derive(Args, Debug, Clone)]
struct LoadOpts {
    /// Clients logged in (senders included).
    #[arg(short = 'n', long, default_value_t = 1000)]
    clients: usize,
    /// Clients that send.
    #[arg(short, long, default_value_t = 10)]
    senders: usize,
    /// Bytes of each chat line as every user receives it (`NAME: TEXT` + LF).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds measured (per step for ramp).
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// At most this many seconds to wait for lines in flight after sending.
    #[arg(long, default_value_t = 30.0)]
    drain: f64,
    /// Clients logging in at the same time, at most (0: all at once).
    #[arg(long, default_value_t = 0)]
    inflight: usize,
    /// Give up if logging in takes longer than this many seconds.
    #[arg(long, default_value_t = 120.0)]
    login_limit: f64,
    /// Check that every client got the lines in one and the same order
    /// (fanout).
    #[arg(long)]
    check_order: bool,
    #[command(flatten)]
    transport: TransportOpts,
}

impl LoadOpts {
    fn load(&self) -> Load {
        Load {
            clients: self.clients,
            senders: self.senders,
            size: self.size,
            warmup: self.warmup,
            duration: self.duration,
            drain: self.drain,
            inflight: self.inflight,
            login_limit: self.login_limit,
            prefix: "b".into(),
            seed: 0,
            since: None,
            ws_share: self.transport.share(),
            check_order: self.check_order,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N clients, S senders, R lines/s in total (open loop): throughput,
    /// loss, latency, CPU per delivery.
    Fanout {
        #[command(flatten)]
        load: LoadOpts,
        /// Lines per second, over all senders.
        #[arg(short, long, default_value_t = 3000.0)]
        rate: f64,
    },
    /// Rising rates, then bisection: the highest rate with p99 within
    /// --p99-ms and nothing lost.
    Ramp {
        #[command(flatten)]
        load: LoadOpts,
        /// First rate, lines/s.
        #[arg(long, default_value_t = 500.0)]
        from: f64,
        /// Multiplier while steps pass.
        #[arg(long, default_value_t = 2.0)]
        factor: f64,
        /// Stop when the gap between pass and fail is below this fraction.
        #[arg(long, default_value_t = 0.05)]
        precision: f64,
        /// Highest rate tried, lines/s.
        #[arg(long, default_value_t = 1e6)]
        max_rate: f64,
        /// At most this many steps.
        #[arg(long, default_value_t = 14)]
        max_steps: usize,
        /// The latency limit (p99), ms.
        #[arg(long, default_value_t = 50.0)]
        p99_ms: f64,
    },
    /// N clients log in (all at once, or at most --inflight at a time: a
    /// reconnect storm), each reading every join notice the server sends;
    /// then the server's RSS per connection; then the time for one line to
    /// reach all.
    Connect {
        /// Clients.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        clients: usize,
        /// Clients logging in at the same time, at most (0: all at once).
        /// A client logs in from its connect to its own join notice.
        #[arg(long, default_value_t = 0)]
        inflight: usize,
        /// Seconds to stay idle before reading the RSS (the server frees
        /// idle buffers in its once-a-second sweep).
        #[arg(long, default_value_t = 2.5)]
        settle: f64,
        /// Single lines sent one after another after that.
        #[arg(long, default_value_t = 5)]
        lines: usize,
        /// Give up if logging in takes longer than this many seconds.
        #[arg(long, default_value_t = 120.0)]
        login_limit: f64,
        /// Before the clients come, another user says this many lines (and
        /// leaves), so the room has history: each newcomer is sent up to the
        /// server's --join-history of it before its join notice.
        #[arg(long, default_value_t = 0)]
        seed: usize,
        /// Every client sends `/since ID` before its name, as a client
        /// resuming after a lost connection: the lines after ID replace the
        /// recent ones (with --seed L in a new room, ids 2 to L+1 are the
        /// seeded lines).
        #[arg(long, value_name = "ID")]
        since: Option<u64>,
        #[command(flatten)]
        transport: TransportOpts,
    },
    /// The floor for `connect`'s single line: the same measurement against
    /// a bare broadcaster (one write per receiver, no protocol, no login).
    Floor {
        /// Clients.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        clients: usize,
        /// Single lines sent one after another.
        #[arg(long, default_value_t = 5)]
        lines: usize,
    },
    /// N readers in the room; S senders each paste L lines of B bytes in
    /// one write, all at the same instant, R times: deliveries/s and
    /// latency during the bursts, connections dropped (and why), and
    /// whether every user got every line in one order.
    Burst {
        /// Readers (besides the senders, who read too).
        #[arg(short = 'n', long, default_value_t = 1000)]
        readers: usize,
        /// Senders that paste.
        #[arg(short, long, default_value_t = 3)]
        senders: usize,
        /// Lines per paste.
        #[arg(short, long, default_value_t = 40)]
        lines: u32,
        /// Bytes of each line as every user receives it (`NAME: TEXT` + LF).
        #[arg(short = 'b', long, default_value_t = 4000)]
        size: usize,
        /// Pastes per sender.
        #[arg(short, long, default_value_t = 5)]
        repeat: u32,
        /// Seconds from the end of one burst to the next paste (a server
        /// with --rate 20 refills a sender's 40 lines in 2 s).
        #[arg(long, default_value_t = 2.5)]
        pause: f64,
        /// At most this many seconds to wait for a burst's lines.
        #[arg(long, default_value_t = 30.0)]
        drain: f64,
        /// Clients logging in at the same time, at most (0: all at once).
        #[arg(long, default_value_t = 0)]
        inflight: usize,
        /// Give up if logging in takes longer than this many seconds.
        #[arg(long, default_value_t = 120.0)]
        login_limit: f64,
        #[command(flatten)]
        transport: TransportOpts,
    },
    /// The bare broadcaster `floor` starts (internal).
    #[command(hide = true)]
    IdealServer {
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
    },
    /// TLS handshakes per second: connections (--inflight at a time) that
    /// each make a TLS 1.3 handshake, read the greeting and close; a new
    /// one takes each one's place. Always against a TLS server.
    Handshakes {
        /// Connections at a time.
        #[arg(long, default_value_t = 64)]
        inflight: usize,
        /// Seconds measured (after a second of warm-up).
        #[arg(short, long, default_value_t = 5.0)]
        duration: f64,
        /// Resume sessions from the server's tickets instead of a full
        /// handshake each time.
        #[arg(long)]
        resume: bool,
    },
    /// TLS against plain TCP in one run, each on a fresh server: light
    /// load, fan-out, the ramp, 10,000 idle users (RSS per connection) and
    /// handshakes per second; prints the table.
    TlsTargets {
        /// Seconds measured per fan-out run (the ramp's steps take half).
        #[arg(short, long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Every benchmark target (issues 5 and 8), each on a fresh server;
    /// prints the table.
    Targets {
        /// Seconds measured per fan-out run and per ramp step.
        #[arg(short, long, default_value_t = 10.0)]
        duration: f64,
    },
    /// The WebSocket targets (issue 10), each on a fresh server: idle
    /// WebSocket users' memory, the fan-out ramp over WebSocket against
    /// TCP, a mixed room's order, light load; prints the table.
    WebTargets {
        /// Seconds measured per fan-out run and per ramp step.
        #[arg(short, long, default_value_t = 10.0)]
        duration: f64,
    },
}

/// One fan-out target run on a fresh server: `clients` users, 10 senders,
/// `rate` lines/s; prints it and adds it to `json`.
fn fanout_target(
    cli: &Cli,
    clients: usize,
    rate: f64,
    duration: f64,
    json: &mut Vec<String>,
) -> Result<scenario::Fanout, String> {
    let load = Load {
        clients,
        senders: 10,
        duration,
        ..Load::default()
    };
    let under = server_for(&cli.server, load.clients)?;
    let f = scenario::fanout(&under.target(), &load, rate).map_err(|e| e.to_string())?;
    drop(under);
    if cli.server.tls {
        print!("TLS: ");
    }
    println!("{}", f.text(rate));
    json.push(f.json());
    Ok(f)
}

/// The server for one scenario: started now, or the one given.
enum Under {
    Spawned(ServerProc),
    Cluster(ClusterProc),
    Given(Target),
}

impl Under {
    fn target(&self) -> Target {
        match self {
            Under::Spawned(s) => s.target.clone(),
            Under::Cluster(c) => c.target(),
            Under::Given(t) => t.clone(),
        }
    }
}

fn ideal_for(opts: &ServerOpts) -> Result<Under, String> {
    let cpu = (!opts.no_pin && sys::cpus() > opts.server_cpu).then_some(opts.server_cpu);
    let s =
        ServerProc::spawn_ideal(cpu).map_err(|e| format!("starting the bare broadcaster: {e}"))?;
    Ok(Under::Spawned(s))
}

fn server_for(opts: &ServerOpts, clients: usize) -> Result<Under, String> {
    web_server_for(opts, clients, false)
}

/// The server for `clients` clients; `web`: some of them talk WebSocket,
/// so it listens on a web port too.
fn web_server_for(opts: &ServerOpts, clients: usize, web: bool) -> Result<Under, String> {
    if let (Some(addr), Some(pid)) = (opts.addr, opts.pid) {
        if web && opts.web_addr.is_none() {
            return Err("WebSocket clients need the running server's --web-addr".into());
        }
        let mut t = Target::single(addr, pid);
        t.web = opts.web_addr;
        return Ok(Under::Given(t));
    }
    let path = opts.server.clone().unwrap_or_else(default_server_path);
    let cpu = (!opts.no_pin && sys::cpus() > opts.server_cpu).then_some(opts.server_cpu);
    let (max, extra) = (clients + 64, &opts.server_args);
    if let Some(n) = opts.cluster {
        let c = ClusterProc::spawn(&path, n as usize, cpu, max, extra)
            .map_err(|e| format!("starting the cluster: {e}"))?;
        return Ok(Under::Cluster(c));
    }
    let s = if opts.tls {
        ServerProc::spawn_tls(&path, cpu, max, extra, false)
    } else if web {
        ServerProc::spawn_web(&path, cpu, max, extra)
    } else {
        ServerProc::spawn(&path, cpu, max, extra)
    };
    let s = s.map_err(|e| format!("starting the server: {e}"))?;
    Ok(Under::Spawned(s))
}

/// A TLS server for `handshakes`, its clients resuming sessions when
/// `resume`.
fn tls_server_for(opts: &ServerOpts, resume: bool) -> Result<Under, String> {
    if opts.addr.is_some() {
        return Err("handshakes starts its own TLS server; drop --addr/--pid".into());
    }
    let path = opts.server.clone().unwrap_or_else(default_server_path);
    let cpu = (!opts.no_pin && sys::cpus() > opts.server_cpu).then_some(opts.server_cpu);
    let s = ServerProc::spawn_tls(&path, cpu, 10_000, &opts.server_args, resume)
        .map_err(|e| format!("starting the TLS server: {e}"))?;
    Ok(Under::Spawned(s))
}

fn header(json: bool, under: &Under) {
    if json {
        return;
    }
    println!("machine: {}; loadavg {}", sys::machine(), sys::loadavg());
    match under {
        Under::Spawned(s) => println!("server:  {} (pid {})", s.command, s.target.pid),
        Under::Cluster(c) => {
            println!("redis:   {} (pid {})", c.command, c.redis_at.pid);
            for s in &c.servers {
                println!("server:  {} (pid {})", s.command, s.target.pid);
            }
        }
        Under::Given(t) => println!("server:  {} (pid {})", t.addr, t.pid),
    }
}

fn run(cli: &Cli) -> Result<bool, String> {
    let e = |e: std::io::Error| e.to_string();
    match &cli.scenario {
        Scenario::Fanout { load, rate } => {
            let web = load.transport.share() > 0.0;
            let under = web_server_for(&cli.server, load.clients, web)?;
            header(cli.json, &under);
            let r = scenario::fanout(&under.target(), &load.load(), *rate).map_err(e)?;
            drop(under);
            if cli.json {
                println!("{}", r.json());
            } else {
                print!("{}", r.text(*rate));
            }
            Ok(r.ok())
        }
        Scenario::Ramp {
            load,
            from,
            factor,
            precision,
            max_rate,
            max_steps,
            p99_ms,
        } => {
            let web = load.transport.share() > 0.0;
            let under = web_server_for(&cli.server, load.clients, web)?;
            header(cli.json, &under);
            let plan = RampPlan {
                from: *from,
                factor: *factor,
                precision: *precision,
                max_rate: *max_rate,
                max_steps: *max_steps,
                limit_ns: (*p99_ms * 1e6) as u64,
            };
            let l = load.load();
            if !cli.json {
                println!(
                    "ramp: {} clients, {} senders, {} B lines, {} s per step (+{} s warm-up), p99 limit {}",
                    thousands(l.clients as f64),
                    l.senders,
                    l.size,
                    l.duration,
                    l.warmup,
                    dur(plan.limit_ns)
                );
            }
            let json = cli.json;
            let r = scenario::ramp(&under.target(), &l, &plan, |s| {
                if !json {
                    println!("{}", s.short(plan.limit_ns));
                }
            })
            .map_err(e)?;
            drop(under);
            if json {
                println!("{}", r.json());
            } else {
                print!("{}", r.text());
            }
            Ok(r.login.ok() && !r.steps.is_empty())
        }
        Scenario::Connect {
            clients,
            inflight,
            settle,
            lines,
            login_limit,
            seed,
            since,
            transport,
        } => {
            let under = web_server_for(&cli.server, *clients, transport.share() > 0.0)?;
            header(cli.json, &under);
            let load = Load {
                clients: *clients,
                senders: 1,
                inflight: *inflight,
                login_limit: *login_limit,
                seed: *seed,
                since: *since,
                ws_share: transport.share(),
                ..Load::default()
            };
            let r = scenario::connect(&under.target(), &load, *settle, *lines).map_err(e)?;
            drop(under);
            if cli.json {
                println!("{}", r.json());
            } else {
                print!("{}", r.text());
            }
            Ok(r.ok())
        }
        Scenario::Floor { clients, lines } => {
            let under = ideal_for(&cli.server)?;
            header(cli.json, &under);
            let load = Load {
                clients: *clients,
                senders: 1,
                ..Load::default()
            };
            let r = scenario::floor(&under.target(), &load, *lines).map_err(e)?;
            drop(under);
            if cli.json {
                println!("{}", r.json());
            } else {
                print!("floor (bare broadcaster): {}", r.text());
            }
            Ok(r.ok())
        }
        Scenario::Burst {
            readers,
            senders,
            lines,
            size,
            repeat,
            pause,
            drain,
            inflight,
            login_limit,
            transport,
        } => {
            let load = Load {
                clients: readers + senders,
                senders: *senders,
                size: *size,
                drain: *drain,
                inflight: *inflight,
                login_limit: *login_limit,
                ws_share: transport.share(),
                ..Load::default()
            };
            let plan = BurstPlan {
                lines: *lines,
                bursts: *repeat,
                pause: *pause,
            };
            let under = web_server_for(&cli.server, load.clients, load.ws_share > 0.0)?;
            header(cli.json, &under);
            let r = burst::burst(&under.target(), &load, &plan).map_err(e)?;
            drop(under);
            if cli.json {
                println!("{}", r.json());
            } else {
                print!("{}", r.text());
            }
            Ok(r.ok())
        }
        Scenario::IdealServer { port } => {
            let l = std::net::TcpListener::bind(("127.0.0.1", *port)).map_err(e)?;
            crate::ideal::serve(l).map_err(e)?;
            Ok(true)
        }
        Scenario::Handshakes {
            inflight,
            duration,
            resume,
        } => {
            let under = tls_server_for(&cli.server, *resume)?;
            header(cli.json, &under);
            let t = under.target();
            let config = t.tls.clone().ok_or("no TLS configuration")?;
            let h =
                crate::tls::handshakes(&t, &config, *resume, *inflight, *duration).map_err(e)?;
            drop(under);
            if cli.json {
                println!("{}", h.json());
            } else {
                print!("{}", h.text());
            }
            Ok(h.ok())
        }
        Scenario::TlsTargets { duration } => tls_targets(cli, *duration),
        Scenario::Targets { duration } => targets(cli, *duration),
        Scenario::WebTargets { duration } => web_targets(cli, *duration),
    }
}

/// One row of the targets table.
struct Row {
    what: String,
    goal: String,
    got: String,
    met: bool,
}

fn targets(cli: &Cli, duration: f64) -> Result<bool, String> {
    if cli.server.addr.is_some() {
        return Err("targets starts its own servers; drop --addr/--pid".into());
    }
    let e = |e: std::io::Error| e.to_string();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    println!("machine: {}", sys::machine());
    println!("loadavg at start: {}", sys::loadavg());

    // 1. 10,000 users at once.
    let n = 10_000;
    let under = server_for(&cli.server, n)?;
    if let Under::Spawned(s) = &under {
        println!("server:  {}\n", s.command);
    }
    let load = Load {
        clients: n,
        senders: 1,
        ..Load::default()
    };
    let c = scenario::connect(&under.target(), &load, 2.5, 5).map_err(e)?;
    drop(under);
    println!("{}", c.text());
    json.push(c.json());
    rows.push(Row {
        what: format!(
            "10,000 users log in at once, each reads every join notice sent ({} in all)",
            thousands(c.login.joins_expected as f64)
        ),
        goal: "<= 5 s".into(),
        got: format!(
            "{:.2} s (all in after {:.2} s){}",
            c.login.all_notices_s,
            c.login.all_in_s,
            if c.login.ok() { "" } else { "; LOGIN FAILED" }
        ),
        met: c.login.ok() && c.login.all_notices_s <= 5.0,
    });
    rows.push(Row {
        what: "server RSS per idle connection, (after - before) / N".into(),
        goal: "<= 2,048 B".into(),
        got: format!("{:.0} B", c.rss_per_conn()),
        met: c.login.ok() && c.rss_per_conn() <= 2048.0,
    });
    rows.push(Row {
        what: "then one line reaches all 10,000 (worst of 5)".into(),
        goal: "<= 60 ms".into(),
        got: format!(
            "{:.1} ms (median {:.1} ms){}",
            c.line_max(),
            c.line_p50(),
            if c.line_lost > 0 { "; LOST" } else { "" }
        ),
        met: c.ok() && c.line_ms.len() == 5 && c.line_max() <= 60.0,
    });

    // The floor for that single line on this machine: a bare broadcaster.
    let under = ideal_for(&cli.server)?;
    let load = Load {
        clients: n,
        senders: 1,
        ..Load::default()
    };
    let fl = scenario::floor(&under.target(), &load, 5).map_err(e)?;
    drop(under);
    println!("floor (bare broadcaster): {}", fl.text());
    json.push(fl.json());
    rows.push(Row {
        what: "(reference) the same line through a bare broadcaster: one write() per receiver, no protocol".into(),
        goal: "-".into(),
        got: format!(
            "{:.1} ms (median {:.1} ms); {:.1} ms of server CPU per line vs {:.1} ms for chat-server",
            fl.line_max(),
            fl.line_p50(),
            fl.line_server_cpu * 1e3,
            c.line_server_cpu * 1e3
        ),
        met: fl.ok(),
    });

    // 2. Fan-out, 1,000 users, 10 senders, 3,000 lines/s = 3,000,000 deliveries/s.
    let f = fanout_target(cli, 1000, 3000.0, duration, &mut json)?;
    let (got, met) = match &f.step {
        Some(s) => (
            format!(
                "{} offered, {} read/s in the window; p99 {}; lost {}, dropped {}; bench CPU {:.0} %",
                thousands(s.offered),
                thousands(s.throughput),
                dur(s.p99),
                thousands(s.lost as f64),
                s.dropped,
                100.0 * s.bench_cpu / s.span
            ),
            f.ok() && s.offered >= 3e6 && s.p99 <= 50_000_000,
        ),
        None => ("login failed".into(), false),
    };
    rows.push(Row {
        what: "fan-out: 1,000 users, 10 senders, 64 B lines, 3,000 lines/s".into(),
        goal: ">= 3,000,000 deliveries/s, p99 <= 50 ms, 0 lost".into(),
        got,
        met,
    });

    // 3. Light load: 100 users, 1,000 lines/s.
    let f = fanout_target(cli, 100, 1000.0, duration, &mut json)?;
    let (got, met) = match &f.step {
        Some(s) => (
            format!(
                "p99 {} (p50 {}, p99.9 {}); lost {}",
                dur(s.p99),
                dur(s.p50),
                dur(s.p999),
                s.lost
            ),
            f.ok() && s.p99 < 2_000_000,
        ),
        None => ("login failed".into(), false),
    };
    rows.push(Row {
        what: "light load: 100 users, 10 senders, 1,000 lines/s".into(),
        goal: "p99 < 2 ms".into(),
        got,
        met,
    });

    // 4. Ramp: saturation and CPU per delivery.
    let load = Load {
        clients: 1000,
        senders: 10,
        duration: (duration / 2.0).max(2.0),
        ..Load::default()
    };
    let r = ramp_run(cli, &load, &mut json)?;
    rows.push(Row {
        what: "ramp: highest fan-out rate with p99 <= 50 ms, 0 lost (1,000 users)".into(),
        goal: ">= 3,000,000 deliveries/s".into(),
        got: r.best().map_or("none passed".into(), |b| {
            format!(
                "{} deliveries/s ({} lines/s), p99 {}",
                thousands(b.offered),
                thousands(b.rate),
                dur(b.p99)
            )
        }),
        met: r.best().is_some_and(|b| b.offered >= 3e6),
    });
    // At saturation: the highest rate that still held p99 and lost nothing
    // (beyond it latency, not CPU, gives out first).
    let sat = r.best();
    rows.push(Row {
        what: "server CPU per delivery at saturation (highest passing ramp step)".into(),
        goal: "well under 1 µs".into(),
        got: sat.map_or("?".into(), |s| {
            format!(
                "{:.3} µs at {} deliveries/s (server {:.0} %, bench {:.0} % of a core)",
                s.us_per_delivery(),
                thousands(s.throughput),
                100.0 * s.server_cpu / s.span,
                100.0 * s.bench_cpu / s.span
            )
        }),
        met: sat.is_some_and(|s| s.us_per_delivery() < 0.5),
    });

    rows.extend(reconnect_targets(cli, &mut json)?);
    rows.push(burst_target(cli, &mut json)?);
    print_table(cli, &rows, &json);
    Ok(true)
}

/// Prints the JSON of every run (with `--json`) and the table of `rows`.
fn print_table(cli: &Cli, rows: &[Row], json: &[String]) {
    if cli.json {
        println!("[{}]", json.join(",\n"));
    }
    println!("loadavg at end: {}\n", sys::loadavg());
    println!("| target | goal | measured | met |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what,
            r.goal,
            r.got,
            match (r.goal.as_str(), r.met) {
                ("-", true) => "(reference)",
                ("-", false) => "(reference run failed)",
                (_, true) => "met",
                (_, false) => "not met",
            }
        );
    }
}
/// One ramp on a fresh server: `load` with rising rates from 1,000
/// lines/s; prints every step and the result.
fn ramp_run(cli: &Cli, load: &Load, json: &mut Vec<String>) -> Result<scenario::Ramp, String> {
    let plan = RampPlan {
        from: 1000.0,
        ..RampPlan::default()
    };
    let under = web_server_for(&cli.server, load.clients, load.ws_share > 0.0)?;
    let transport = if cli.server.tls {
        "TLS".into()
    } else {
        transport_name(load.ws_share)
    };
    println!(
        "ramp: {} clients ({transport}), {} senders, {} B lines, {} s per step",
        thousands(load.clients as f64),
        load.senders,
        load.size,
        load.duration
    );
    let r = scenario::ramp(&under.target(), load, &plan, |s| {
        println!("{}", s.short(plan.limit_ns));
    })
    .map_err(|e| e.to_string())?;
    drop(under);
    println!("{}", r.text());
    json.push(r.json());
    Ok(r)
}

/// "TCP", "WebSocket" or "N % WebSocket".
fn transport_name(share: f64) -> String {
    match share {
        s if s <= 0.0 => "TCP".into(),
        s if s >= 1.0 => "WebSocket".into(),
        s => format!("{:.0} % WebSocket", s * 100.0),
    }
}

/// Issue 10's WebSocket targets, each on a fresh server: 10,000 idle
/// WebSocket users (RSS per connection, next to TCP), the fan-out ramp over
/// WebSocket against TCP in the same run, a mixed room of 500 + 500 (one
/// order for all), and light load over WebSocket.
fn web_targets(cli: &Cli, duration: f64) -> Result<bool, String> {
    if cli.server.addr.is_some() {
        return Err("web-targets starts its own servers; drop --addr/--pid".into());
    }
    let e = |e: std::io::Error| e.to_string();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    println!("machine: {}", sys::machine());
    println!("loadavg at start: {}", sys::loadavg());

    // 1. 10,000 idle users, WebSocket then TCP.
    let mut per_conn = [f64::NAN; 2];
    for (k, share) in [1.0, 0.0].into_iter().enumerate() {
        let n = 10_000;
        let under = web_server_for(&cli.server, n, share > 0.0)?;
        if let Under::Spawned(s) = &under {
            println!("server:  {}\n", s.command);
        }
        let load = Load {
            clients: n,
            senders: 1,
            ws_share: share,
            ..Load::default()
        };
        let c = scenario::connect(&under.target(), &load, 2.5, 3).map_err(e)?;
        drop(under);
        println!("{}", c.text());
        json.push(c.json());
        per_conn[k] = c.rss_per_conn();
        let (goal, met) = if share > 0.0 {
            ("<= 2,048 B", c.ok() && c.rss_per_conn() <= 2048.0)
        } else {
            ("-", c.ok())
        };
        rows.push(Row {
            what: format!(
                "server RSS per idle {} user, 10,000 logged in, (after - before) / N",
                transport_name(share)
            ),
            goal: goal.into(),
            got: format!(
                "{:.0} B; all in after {:.2} s; one line to all in {:.1} ms (median of 3){}",
                c.rss_per_conn(),
                c.login.all_in_s,
                c.line_p50(),
                if c.ok() { "" } else { "; FAILED" }
            ),
            met,
        });
    }

    // 2. The fan-out ramp, TCP then WebSocket, 1,000 users, 10 senders.
    let base = Load {
        clients: 1000,
        senders: 10,
        duration: (duration / 2.0).max(2.0),
        ..Load::default()
    };
    let tcp = ramp_run(cli, &base, &mut json)?;
    let ws = ramp_run(
        cli,
        &Load {
            ws_share: 1.0,
            ..base.clone()
        },
        &mut json,
    )?;
    let best = |r: &scenario::Ramp| r.best().map_or(0.0, |b| b.offered);
    let ratio = best(&ws) / best(&tcp);
    let describe = |r: &scenario::Ramp| {
        r.best().map_or("none passed".into(), |b| {
            format!(
                "{} deliveries/s ({} lines/s), p99 {}, {:.3} µs server CPU per delivery",
                thousands(b.offered),
                thousands(b.rate),
                dur(b.p99),
                b.us_per_delivery()
            )
        })
    };
    rows.push(Row {
        what: "(reference) ramp over TCP: highest rate with p99 <= 50 ms, 0 lost (1,000 users, 10 senders, 64 B)".into(),
        goal: "-".into(),
        got: describe(&tcp),
        met: tcp.best().is_some(),
    });
    rows.push(Row {
        what: "ramp over WebSocket, the same load, in the same run".into(),
        goal: ">= 70 % of TCP".into(),
        got: format!("{}; {:.0} % of TCP", describe(&ws), ratio * 100.0),
        met: ratio >= 0.7,
    });
    let most = |r: &scenario::Ramp| r.busiest().map_or(0.0, |b| b.throughput);
    let sat = |r: &scenario::Ramp| {
        r.busiest().map_or("?".into(), |b| {
            format!(
                "{} deliveries/s read at {} lines/s offered (server {:.0} %, bench {:.0} % of a core)",
                thousands(b.throughput),
                thousands(b.rate),
                100.0 * b.server_cpu / b.span,
                100.0 * b.bench_cpu / b.span
            )
        })
    };
    rows.push(Row {
        what: "(reference) saturation, TCP then WebSocket: the most any step read".into(),
        goal: "-".into(),
        got: format!(
            "TCP {}; WebSocket {}: {:.0} % of TCP",
            sat(&tcp),
            sat(&ws),
            100.0 * most(&ws) / most(&tcp)
        ),
        met: tcp.busiest().is_some() && ws.busiest().is_some(),
    });

    // 3. A mixed room: 500 TCP + 500 WebSocket users, 10 senders (5 of
    // each), every client checks the order.
    let load = Load {
        clients: 1000,
        senders: 10,
        duration,
        ws_share: 0.5,
        check_order: true,
        ..Load::default()
    };
    let under = web_server_for(&cli.server, load.clients, true)?;
    let f = scenario::fanout(&under.target(), &load, 1000.0).map_err(e)?;
    drop(under);
    println!("{}", f.text(1000.0));
    json.push(f.json());
    rows.push(Row {
        what: "mixed room: 500 TCP + 500 WebSocket users, 10 senders (5 of each), 1,000 lines/s"
            .into(),
        goal: "every line to everyone, one order for all".into(),
        got: match (&f.step, f.order) {
            (Some(s), Some((complete, orders))) => format!(
                "{} of {} delivered, {} lost; {} of 1,000 users got every line, {} order(s); p99 {}",
                thousands(s.received as f64),
                thousands(s.expected as f64),
                thousands(s.lost as f64),
                thousands(complete as f64),
                orders,
                dur(s.p99)
            ),
            _ => "login failed".into(),
        },
        met: f.ok() && f.same_order() == Some(true),
    });

    // 4. Light load over WebSocket: 100 users, 1,000 lines/s.
    let load = Load {
        clients: 100,
        senders: 10,
        duration,
        ws_share: 1.0,
        ..Load::default()
    };
    let under = web_server_for(&cli.server, load.clients, true)?;
    let f = scenario::fanout(&under.target(), &load, 1000.0).map_err(e)?;
    drop(under);
    println!("{}", f.text(1000.0));
    json.push(f.json());
    rows.push(Row {
        what: "light load over WebSocket: 100 users, 10 senders, 1,000 lines/s".into(),
        goal: "p99 < 2 ms".into(),
        got: f.step.as_ref().map_or("login failed".into(), |s| {
            format!(
                "p99 {} (p50 {}, p99.9 {}); lost {}",
                dur(s.p99),
                dur(s.p50),
                dur(s.p999),
                s.lost
            )
        }),
        met: f.ok() && f.step.as_ref().is_some_and(|s| s.p99 < 2_000_000),
    });
    print_table(cli, &rows, &json);
    Ok(true)
}

/// Issue 12's figures: TLS against plain TCP, each on a fresh server.
fn tls_targets(cli: &Cli, duration: f64) -> Result<bool, String> {
    if cli.server.addr.is_some() {
        return Err("tls-targets starts its own servers; drop --addr/--pid".into());
    }
    let e = |e: std::io::Error| e.to_string();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    println!("machine: {}", sys::machine());
    println!("loadavg at start: {}", sys::loadavg());
    let both = |tls: bool| {
        let mut c = Cli {
            scenario: Scenario::TlsTargets { duration },
            server: cli.server.clone(),
            json: cli.json,
        };
        c.server.tls = tls;
        c
    };
    let (plain, tls) = (both(false), both(true));
    let step_text = |f: &scenario::Fanout| {
        f.step.as_ref().map_or("login failed".to_string(), |s| {
            format!(
                "{} read/s, p50 {}, p99 {}, lost {}, dropped {}; server {:.0} % of a core, {:.3} µs per delivery",
                thousands(s.throughput),
                dur(s.p50),
                dur(s.p99),
                thousands(s.lost as f64),
                s.dropped,
                100.0 * s.server_cpu / s.span,
                s.us_per_delivery()
            )
        })
    };
    for (what, clients, rate) in [
        (
            "light load: 100 users, 10 senders, 1,000 lines/s",
            100,
            1000.0,
        ),
        (
            "fan-out: 1,000 users, 10 senders, 64 B lines, 3,000 lines/s",
            1000,
            3000.0,
        ),
    ] {
        let p = fanout_target(&plain, clients, rate, duration, &mut json)?;
        let t = fanout_target(&tls, clients, rate, duration, &mut json)?;
        rows.push(Row {
            what: what.into(),
            goal: format!("plain: {}", step_text(&p)),
            got: format!("TLS: {}", step_text(&t)),
            met: p.ok() && t.ok(),
        });
    }

    let load = Load {
        clients: 1000,
        senders: 10,
        duration: (duration / 2.0).max(2.0),
        ..Load::default()
    };
    let mut best = Vec::new();
    for (name, c) in [("plain", &plain), ("TLS", &tls)] {
        let r = ramp_run(c, &load, &mut json)?;
        best.push(r.best().map_or("none passed".into(), |b| {
            format!(
                "{name}: {} deliveries/s ({} lines/s), p99 {}; {:.3} µs of server CPU per delivery",
                thousands(b.offered),
                thousands(b.rate),
                dur(b.p99),
                b.us_per_delivery()
            )
        }));
    }
    rows.push(Row {
        what: "ramp: highest fan-out rate with p99 <= 50 ms, 0 lost (1,000 users)".into(),
        goal: best[0].clone(),
        got: best[1].clone(),
        met: true,
    });

    let n = 10_000;
    let mut idle = Vec::new();
    for (name, c) in [("plain", &plain), ("TLS", &tls)] {
        let under = server_for(&c.server, n)?;
        let load = Load {
            clients: n,
            senders: 1,
            ..Load::default()
        };
        let r = scenario::connect(&under.target(), &load, 2.5, 5).map_err(e)?;
        drop(under);
        println!("connect ({name}): {}", r.text());
        json.push(r.json());
        idle.push(format!(
            "{name}: {:.0} B per idle connection; login of all {:.2} s; one line to all {:.1} ms (median {:.1} ms){}",
            r.rss_per_conn(),
            r.login.all_notices_s,
            r.line_max(),
            r.line_p50(),
            if r.ok() { "" } else { "; FAILED" }
        ));
    }
    rows.push(Row {
        what: "10,000 users log in at once and stay idle: server RSS per connection".into(),
        goal: idle[0].clone(),
        got: idle[1].clone(),
        met: true,
    });

    for resume in [false, true] {
        let under = tls_server_for(&cli.server, resume)?;
        let t = under.target();
        let config = t.tls.clone().ok_or("no TLS configuration")?;
        // A client keeps at most 8 tickets per server: more connections at
        // a time than that would find none and make full handshakes.
        let inflight = if resume { 8 } else { 64 };
        let h = crate::tls::handshakes(&t, &config, resume, inflight, duration / 2.0).map_err(e)?;
        drop(under);
        print!("{}", h.text());
        json.push(h.json());
        rows.push(Row {
            what: format!(
                "TLS 1.3 handshakes, {}, {inflight} at a time (connect, handshake, greeting, reset)",
                if resume { "resumed" } else { "full" }
            ),
            goal: "-".into(),
            got: format!(
                "{}/s; server {:.0} µs CPU per handshake; p99 {}{}",
                thousands(h.rate()),
                h.us_per_handshake(),
                dur(h.latency.quantile(0.99)),
                if h.ok() { "" } else { "; FAILURES" }
            ),
            met: h.ok(),
        });
    }

    if cli.json {
        println!("[{}]", json.join(",\n"));
    }
    println!("loadavg at end: {}\n", sys::loadavg());
    println!("| measure | plain TCP | TLS |");
    println!("| --- | --- | --- |");
    for r in &rows {
        let plain = r.goal.strip_prefix("plain: ").unwrap_or(&r.goal);
        let tls = r.got.strip_prefix("TLS: ").unwrap_or(&r.got);
        println!("| {} | {plain} | {tls} |", r.what);
    }
    Ok(rows.iter().all(|r| r.met))
}

/// Issue 8's mass reconnect: 10,000 clients, at most 100 logging in at a
/// time, with the server's default flags and with `--announce-limit 0`
/// (every join to everyone). A server that does not know that flag gets a
/// row saying so instead of a figure.
fn reconnect_targets(cli: &Cli, json: &mut Vec<String>) -> Result<Vec<Row>, String> {
    let load = Load {
        clients: 10_000,
        senders: 1,
        inflight: 100,
        ..Load::default()
    };
    let mut rows = Vec::new();
    for (flags, limit_s) in [(None, 2.0), (Some("--announce-limit=0"), 5.0)] {
        let mut opts = cli.server.clone();
        opts.server_args.extend(flags.map(String::from));
        let what = format!(
            "mass reconnect: 10,000 clients, at most 100 logging in at a time, {}",
            flags.map_or("default flags".into(), |f| format!(
                "{f} (every join to everyone)"
            ))
        );
        let goal = format!("all in, every join notice read <= {limit_s} s");
        let under = match server_for(&opts, load.clients) {
            Ok(u) => u,
            Err(e) => {
                rows.push(Row {
                    what,
                    goal,
                    got: format!("not run: {e}"),
                    met: false,
                });
                continue;
            }
        };
        let c = scenario::connect(&under.target(), &load, 0.5, 0).map_err(|e| e.to_string())?;
        drop(under);
        println!("{}", c.text());
        json.push(c.json());
        let l = &c.login;
        rows.push(Row {
            what,
            goal,
            got: format!(
                "all in after {:.2} s, {} join notices read after {:.2} s (joins announced to everyone: {}); server CPU {:.2} s{}",
                l.all_in_s,
                thousands(l.joins as f64),
                l.all_notices_s,
                thousands(l.announced as f64),
                l.server_cpu,
                if l.ok() { "" } else { "; LOGIN FAILED" }
            ),
            met: l.ok() && l.all_notices_s <= limit_s,
        });
    }
    Ok(rows)
}

/// Issue 8's burst: 1,000 readers while 3 senders paste 40 lines of
/// 4,000 B at once, 5 times.
fn burst_target(cli: &Cli, json: &mut Vec<String>) -> Result<Row, String> {
    let load = Load {
        clients: 1003,
        senders: 3,
        size: 4000,
        ..Load::default()
    };
    let plan = BurstPlan {
        lines: 40,
        bursts: 5,
        pause: 2.5,
    };
    let under = server_for(&cli.server, load.clients)?;
    let b = burst::burst(&under.target(), &load, &plan).map_err(|e| e.to_string())?;
    drop(under);
    println!("{}", b.text());
    json.push(b.json());
    let reasons: Vec<String> = b
        .drops
        .reasons
        .iter()
        .map(|(why, n)| format!("{} {why}", thousands(*n as f64)))
        .collect();
    Ok(Row {
        what: "burst: 1,000 readers; 3 senders each paste 40 lines of 4,000 B at once, 5 times"
            .into(),
        goal: "nobody dropped, nothing lost, one order; deliveries/s and p99".into(),
        got: format!(
            "{} deliveries/s, p99 {}; dropped {}{}; lost {}; {}",
            thousands(b.rate()),
            dur(b.p99),
            thousands(b.dropped as f64),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            thousands(b.lost() as f64),
            if b.same_order() {
                "one order"
            } else {
                "NOT everyone got every line in one order"
            }
        ),
        met: b.ok(),
    })
}

/// Runs the scenario `cli` names; the exit status says whether it passed.
pub fn main(cli: Cli) -> ExitCode {
    sys::raise_nofile();
    let serving = matches!(cli.scenario, Scenario::IdealServer { .. });
    if !serving && !cli.server.no_pin && sys::cpus() > cli.server.bench_cpu {
        sys::pin_self(cli.server.bench_cpu);
    }
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::from(2)
        }
    }
}
