//! chat-bench: the benchmark of `chat-server`. Many clients in one thread,
//! over loopback, talking the real protocol to a real `chat-server` process
//! (see `BENCHMARKS.md` for the method and the figures).
//!
//! It is its own crate of the workspace so that the product library
//! (`chatroom`: server and client) carries no benchmark code: users build
//! and run the server and the client, not this. It talks to the server only
//! through sockets and `/proc`, so it needs nothing from `chatroom`.
//!
//! # Layout
//!
//! - [`cli`]: the command line (flags, scenarios, the `targets` table);
//!   `src/main.rs` only parses and calls [`cli::main`].
//! - [`fleet`]: the clients (one `mio::Poll`, edge-triggered, reads until
//!   `WouldBlock`, lines parsed in place), with sequence and latency checks.
//! - [`scenario`]: `fanout`, `ramp`, `connect` and `floor`, and their
//!   reports (text and JSON).
//! - [`burst`]: readers in a room while a few users paste long texts at the
//!   same instant: throughput, latency, drops and their reasons, one order.
//! - [`ideal`]: a bare broadcaster (one `write` per receiver, no
//!   protocol), the floor that `chat-bench floor` measures.
//! - [`hist`]: the latency histogram.
//! - [`sys`]: clocks, `/proc` readings (CPU, RSS), pinning, limits.
//! - [`tls`]: `--tls`: the certificate made for the run, the clients' TLS
//!   configuration, and the `handshakes` scenario.
//! - [`ServerProc`]: a `chat-server` the bench starts itself, pinned to one
//!   core with `taskset` where available.
//! - `tests/bench.rs`: small runs of every scenario against the real
//!   `chat-server` binary; they assert that nothing is lost, never speed.

pub mod burst;
pub mod cli;
pub mod fleet;
pub mod hist;
pub mod ideal;
pub mod scenario;
pub mod sys;
pub mod tls;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server under test: where it listens and which process it is.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its listening address.
    pub addr: SocketAddr,
    /// Its process id (for `/proc/PID/stat` and `/proc/PID/status`).
    pub pid: u32,
    /// The clients' TLS configuration when it speaks TLS there.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A `chat-server` started by the bench; killed when dropped.
pub struct ServerProc {
    child: Child,
    /// Where it listens.
    pub target: Target,
    /// The command line, for the report.
    pub command: String,
    /// Its certificate files, with `--tls` (removed with the server).
    _certs: Option<tls::Certs>,
}

/// `chat-server` next to the running executable (both are built together).
pub fn default_server_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("chat-server")))
        .unwrap_or_else(|| PathBuf::from("chat-server"))
}

fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl ServerProc {
    /// Starts `path --host 127.0.0.1 --port P --rate 0 -q --max-clients M
    /// --idle-timeout 3600 EXTRA...` on a free port, under `taskset -c CPU`
    /// when `cpu` is given and `taskset` exists, and waits until it accepts.
    /// A flag in `extra` replaces the bench's own (`--rate`,
    /// `--max-clients`, `--idle-timeout`; `-q` gives way to any `-v`, `-q`
    /// or `--log-level`): the server takes each flag once.
    pub fn spawn(
        path: &Path,
        cpu: Option<usize>,
        max_clients: usize,
        extra: &[String],
    ) -> io::Result<ServerProc> {
        Self::spawn_with(path, cpu, max_clients, extra, None)
    }

    /// [`ServerProc::spawn`], speaking TLS only (`--no-plain`, the
    /// certificate made for the run); the target's clients use TLS 1.3,
    /// resuming sessions when `resume`.
    pub fn spawn_tls(
        path: &Path,
        cpu: Option<usize>,
        max_clients: usize,
        extra: &[String],
        resume: bool,
    ) -> io::Result<ServerProc> {
        let certs = tls::Certs::make()?;
        let client = certs.client(resume)?;
        let mut s = Self::spawn_with(path, cpu, max_clients, extra, Some(&certs))?;
        s.target.tls = Some(client);
        s._certs = Some(certs);
        Ok(s)
    }

    fn spawn_with(
        path: &Path,
        cpu: Option<usize>,
        max_clients: usize,
        extra: &[String],
        certs: Option<&tls::Certs>,
    ) -> io::Result<ServerProc> {
        // -q hides the "listening on" line, so pick the port here.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut args: Vec<String> = ["--host", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match certs {
            None => args.extend(["--port".into(), port.to_string()]),
            Some(c) => args.extend([
                "--no-plain".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert".into(),
                c.cert.display().to_string(),
                "--tls-key".into(),
                c.key.display().to_string(),
            ]),
        }
        let given = |flag: &str| {
            extra
                .iter()
                .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|v| v.starts_with('=')))
        };
        if !given("--web-port") && !extra.iter().any(|a| a == "--no-web") {
            args.push("--no-web".into());
        }
        for (flag, value) in [
            ("--rate", "0".to_string()),
            ("--max-clients", max_clients.to_string()),
            ("--idle-timeout", "3600".to_string()),
        ] {
            if !given(flag) {
                args.extend([flag.to_string(), value]);
            }
        }
        let logs = |a: &String| {
            (a.starts_with("-v") || a.starts_with("-q"))
                || ["--verbose", "--quiet", "--log-level"]
                    .iter()
                    .any(|f| a == f || a.starts_with(&format!("{f}=")))
        };
        if !extra.iter().any(logs) {
            args.push("-q".into());
        }
        args.extend(extra.iter().cloned());
        Self::start(path, &args, cpu, port)
    }

    /// Starts this executable's hidden `ideal-server` (see [`ideal`]) on a
    /// free port, pinned like [`ServerProc::spawn`].
    pub fn spawn_ideal(cpu: Option<usize>) -> io::Result<ServerProc> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let me = std::env::current_exe()?;
        let args = [
            "ideal-server".to_string(),
            "--port".into(),
            port.to_string(),
        ];
        Self::start(&me, &args, cpu, port)
    }

    fn start(
        path: &Path,
        args: &[String],
        cpu: Option<usize>,
        port: u16,
    ) -> io::Result<ServerProc> {
        let pinned = cpu.filter(|_| have_taskset());
        let mut cmd = match pinned {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(path);
                c
            }
            _ => Command::new(path),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let command = format!(
            "{} {}",
            cmd.get_program().to_string_lossy(),
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("{command}: exited with {status}")));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "{command}: not accepting after 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = child.id();
        Ok(ServerProc {
            child,
            target: Target {
                addr,
                pid,
                tls: None,
            },
            command,
            _certs: None,
        })
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
