//! The `chat-server` command line: flags, start-up checks (one clear line and
//! exit status 1 for anything unusable), binding, and the run.

use std::net::{TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::LevelFilter;

use socket2::{Domain, Protocol, Socket, Type};

use super::tls::Certs;
use super::{parse_exempt, Backend, Config, Listeners};
use crate::store::Store;

/// The chatroom server: one room, one thread, one mio event loop.
/// Join with `chat-client HOST PORT`, `nc HOST PORT`, or a browser at the
/// web port.
#[derive(Parser, Debug)]
#[command(name = "chat-server", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on (`::` for IPv6).
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on; 0 picks a free port (the log says which).
    #[arg(short, long, default_value_t = 53000)]
    port: u16,
    /// PEM file with the certificate chain, leaf first (e.g. Let's
    /// Encrypt's fullchain.pem). With --tls-key the server also listens for
    /// TLS on --tls-port, and the web side is HTTPS/WSS. Re-read on SIGHUP.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (e.g. privkey.pem).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Port for the line protocol over TLS; 0 picks a free port.
    #[arg(long, default_value_t = 53443)]
    tls_port: u16,
    /// Do not listen for plain TCP on --port (TLS only; needs --tls-cert).
    #[arg(long)]
    no_plain: bool,
    /// Seconds without a byte from a user before it is closed.
    #[arg(long, default_value = "120", value_parser = seconds)]
    idle_timeout: Duration,
    /// Seconds a new connection has to choose a name (or send its HTTP request).
    #[arg(long, default_value = "30", value_parser = seconds)]
    login_timeout: Duration,
    /// Longest line accepted, in bytes (LF and CR not counted).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_line: u32,
    /// Open connections (logged in or not) beyond which new ones are refused.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// Bytes of output a client left unread (after the server offered it)
    /// beyond which it is dropped as too slow.
    #[arg(long, default_value_t = 256 * 1024)]
    max_pending: usize,
    /// Lines per second a user may sustain (burst twice that); 0 turns it off.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Open connections from one address beyond which new ones are refused
    /// (TCP and web together); 0 turns the limit off.
    #[arg(long, default_value_t = 20)]
    max_per_ip: usize,
    /// Addresses and CIDR prefixes not counted under --max-per-ip
    /// (comma-separated; an empty value exempts none).
    #[arg(long, default_value = "127.0.0.0/8,::1", value_parser = exempt)]
    per_ip_exempt: Exempt,
    /// Join and leave notices go to everyone only while the room holds at
    /// most this many users; 0 means always.
    #[arg(long, default_value_t = 1000)]
    announce_limit: usize,
    /// Public lines the room keeps for newcomers, /history and /since; 0
    /// keeps none.
    #[arg(long, default_value_t = 200)]
    history: usize,
    /// Kept lines a newcomer gets before its join notice (at most --history).
    #[arg(long, default_value_t = 20)]
    join_history: usize,
    /// Keep the history in this SQLite file (created if missing), so it and
    /// the ids survive a restart.
    #[arg(long, value_name = "PATH")]
    history_db: Option<PathBuf>,
    /// Port for the web page and WebSocket clients; 0 picks a free port.
    #[arg(long, default_value_t = 8080)]
    web_port: u16,
    /// Do not listen for web clients.
    #[arg(long)]
    no_web: bool,
    /// Accept WebSocket upgrades only with this Origin (repeatable); without
    /// it any origin is accepted.
    #[arg(long, value_name = "ORIGIN")]
    web_origin: Vec<String>,
    /// Join the room kept in this Redis (or Valkey): every server with the
    /// same URL and --cluster-name serves the same room.
    #[arg(long, value_name = "redis://HOST:PORT[/DB]", value_parser = crate::cluster::Url::parse)]
    redis: Option<crate::cluster::Url>,
    /// The room's name in Redis: the prefix of every key and channel.
    #[arg(long, default_value = "chatroom", value_parser = cluster_name)]
    cluster_name: String,
    /// Seconds after which the other servers take a silent server's users
    /// out of the room.
    #[arg(long, default_value = "10", value_parser = seconds)]
    node_ttl: Duration,
    /// Let several servers on this machine listen on the same ports
    /// (SO_REUSEPORT): the kernel spreads new connections over them.
    #[arg(long)]
    reuse_port: bool,
    #[command(flatten)]
    log: crate::logging::LogArgs,
}

/// The parsed `--per-ip-exempt` list (a newtype, so clap treats it as one value).
#[derive(Debug, Clone)]
struct Exempt(Vec<ipnet::IpNet>);

fn exempt(s: &str) -> Result<Exempt, String> {
    parse_exempt(s).map(Exempt)
}

fn cluster_name(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        Ok(s.to_owned())
    } else {
        Err("letters, digits, '_', '-' and '.' only".into())
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "must be a positive number of seconds".into())
}

/// `chat-server`'s whole life: flags, checks, run; the exit status.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return crate::logging::flag_error("chat-server", e),
    };
    args.log.init(LevelFilter::Info);
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the certificate and key, opens the history, binds, runs; any error
/// is one line for the user.
fn start(args: Args) -> Result<(), String> {
    ignore_file_size_signal();
    let config = Config {
        idle_timeout: args.idle_timeout,
        login_timeout: args.login_timeout,
        max_line: args.max_line as usize,
        max_clients: args.max_clients,
        max_pending: args.max_pending,
        rate: args.rate.max(0.0),
        max_per_ip: args.max_per_ip,
        per_ip_exempt: args.per_ip_exempt.0,
        announce_limit: args.announce_limit,
        history: args.history,
        join_history: args.join_history.min(args.history),
        web_origins: args.web_origin,
        ..Default::default()
    };
    let certs = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Certs::load(cert, key)?),
        (None, None) if args.no_plain => {
            return Err(
                "--no-plain needs --tls-cert and --tls-key (TLS is then the only way in)".into(),
            )
        }
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together: give both or neither".into()),
    };
    let backend = match (&args.history_db, &args.redis) {
        (Some(_), Some(_)) => {
            return Err(
                "--history-db cannot be used with --redis: the history is kept in Redis".into(),
            )
        }
        (Some(path), None) => {
            let (store, loaded) = Store::open(path, config.history).map_err(|e| e.to_string())?;
            Backend::Disk(Box::new(store), loaded)
        }
        (None, Some(url)) => {
            let (cluster, loaded) = crate::cluster::start(crate::cluster::Settings {
                url: url.clone(),
                name: args.cluster_name.clone(),
                node_ttl: args.node_ttl,
                history: config.history,
                announce_limit: config.announce_limit,
            })?;
            Backend::Redis(Box::new(cluster), loaded)
        }
        (None, None) => Backend::Memory,
    };
    let bind = |port: u16| bind(&args.host, port, args.reuse_port);
    let chat = if args.no_plain {
        None
    } else {
        Some(bind(args.port)?)
    };
    let tls = match certs {
        Some(certs) => Some((bind(args.tls_port)?, certs)),
        None => None,
    };
    let web = if args.no_web {
        None
    } else {
        Some(bind(args.web_port)?)
    };
    super::run(Listeners { chat, web, tls }, config, backend)
        .map_err(|e| format!("server failed: {e}"))
}

/// Binds a listening socket; with `reuse_port`, SO_REUSEPORT first, so
/// several servers on this machine share the port.
fn bind(host: &str, port: u16, reuse_port: bool) -> Result<TcpListener, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot listen on {host}:{port}: {e}");
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(&e))?
        .next()
        .ok_or_else(|| fail(&"no address"))?;
    if !reuse_port {
        return TcpListener::bind(addr).map_err(|e| fail(&e));
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail(&e))?;
    socket.set_reuse_address(true).map_err(|e| fail(&e))?;
    socket.set_reuse_port(true).map_err(|e| fail(&e))?;
    socket.bind(&addr.into()).map_err(|e| fail(&e))?;
    socket.listen(1024).map_err(|e| fail(&e))?;
    Ok(socket.into())
}

/// A file-size limit (`RLIMIT_FSIZE`) must fail the history database's
/// writes, which the server survives, not kill the whole room with SIGXFSZ.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
