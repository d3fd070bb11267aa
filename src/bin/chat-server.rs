//! `chat-server`: parses flags, binds, and runs the event loop.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::LevelFilter;

/// The chatroom server: one room, one thread, one mio event loop.
/// Join with `chat-client HOST PORT` or `nc HOST PORT`.
#[derive(Parser, Debug)]
#[command(name = "chat-server", version, about, long_about = None)]
struct Args {
    /// Address to listen on (`::` for IPv6).
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on; 0 picks a free port (the log says which).
    #[arg(short, long, default_value_t = 53000)]
    port: u16,
    /// Seconds without a byte from a user before it is closed.
    #[arg(long, default_value = "120", value_parser = seconds)]
    idle_timeout: Duration,
    /// Seconds a new connection has to choose a name.
    #[arg(long, default_value = "30", value_parser = seconds)]
    login_timeout: Duration,
    /// Longest line accepted, in bytes (LF and CR not counted).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_line: u32,
    /// Open connections (logged in or not) beyond which new ones are refused.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// Bytes of unread output after which a connection is dropped.
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
    #[command(flatten)]
    log: chatroom::logging::LogArgs,
}

/// The parsed `--per-ip-exempt` list (a newtype, so clap treats it as one value).
#[derive(Debug, Clone)]
struct Exempt(Vec<ipnet::IpNet>);

fn exempt(s: &str) -> Result<Exempt, String> {
    chatroom::server::parse_exempt(s).map(Exempt)
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "must be a positive number of seconds".into())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return chatroom::logging::flag_error("chat-server", e),
    };
    args.log.init(LevelFilter::Info);
    let config = chatroom::server::Config {
        idle_timeout: args.idle_timeout,
        login_timeout: args.login_timeout,
        max_line: args.max_line as usize,
        max_clients: args.max_clients,
        max_pending: args.max_pending,
        rate: args.rate.max(0.0),
        max_per_ip: args.max_per_ip,
        per_ip_exempt: args.per_ip_exempt.0,
        announce_limit: args.announce_limit,
        ..Default::default()
    };
    let result = TcpListener::bind((args.host.as_str(), args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))
        .and_then(|l| chatroom::server::run(l, config).map_err(|e| format!("server failed: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}
