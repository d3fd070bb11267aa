//! `chat-client`: parses flags and runs the client (see `chatroom::client`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chatroom::client::tls::Trust;
use chatroom::client::{parse_name, parse_seconds, parse_seconds_or_zero, Config};
use clap::Parser;
use log::LevelFilter;

/// A terminal client for the chatroom server. Lines you type are sent; the
/// room's lines are printed. It keeps its connection: after a loss it says
/// so (on stderr), reconnects, logs in again under the same name and shows
/// the lines said while it was away, once each.
/// On a terminal, lines that arrive while you type are printed above the
/// line you are typing; up-arrow recalls earlier lines. Leave with /quit,
/// !quit, {exit}, Ctrl-D (on an empty line) or, on a terminal, Ctrl-C.
#[derive(Parser, Debug)]
#[command(name = "chat-client", version, long_about = None)]
struct Args {
    /// Server host name or address.
    #[arg(default_value = "localhost")]
    host: String,
    /// Server port [default: 53000, with --tls 53443].
    port: Option<u16>,
    /// Log in under this name without being asked (reused after a reconnect).
    #[arg(long, value_parser = parse_name)]
    name: Option<String>,
    /// Seconds between keepalive pings while idle; 3 silent periods mean the
    /// connection is lost.
    #[arg(long, default_value = "20", value_parser = parse_seconds)]
    keepalive: Duration,
    /// Tries in a row after a lost connection (or at start) before giving up;
    /// the delays are 1 s, doubling, at most 8 s.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Seconds a reconnect keeps asking for its name while the server still
    /// holds it, before taking a variant (name_, name__, ...).
    #[arg(long, default_value = "10", value_parser = parse_seconds_or_zero)]
    name_wait: Duration,
    /// Connect over TLS (the server's --tls-port, 53443 by default), checking
    /// its certificate against the system's trusted CAs and the host name.
    #[arg(long)]
    tls: bool,
    /// With --tls: trust the CA certificate(s) in this PEM file instead of
    /// the system's (e.g. for a self-signed server certificate).
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// With --tls: do not check the server's certificate at all (says so on
    /// stderr); anyone in between can then read and change the chat.
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    log: chatroom::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return chatroom::logging::flag_error("chat-client", e),
    };
    if !args.tls && (args.ca.is_some() || args.insecure) {
        eprintln!("chat-client: --ca and --insecure go with --tls (see chat-client --help)");
        return ExitCode::FAILURE;
    }
    args.log.init(LevelFilter::Warn);
    chatroom::client::run(Config {
        host: args.host,
        port: args.port.unwrap_or(if args.tls { 53443 } else { 53000 }),
        name: args.name,
        keepalive: args.keepalive,
        retries: args.retries,
        name_wait: args.name_wait,
        tls: match (args.tls, args.ca, args.insecure) {
            (false, ..) => None,
            (true, Some(ca), _) => Some(Trust::Ca(ca)),
            (true, None, true) => Some(Trust::Insecure),
            (true, None, false) => Some(Trust::System),
        },
    })
    .exit_code()
}
