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
//!   `WouldBlock`, lines parsed in place), with sequence and latency checks,
//!   over TCP, TLS or WebSocket.
//! - [`ws`]: the WebSocket client side: upgrade, masked text frames out,
//!   server frames parsed in place.
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
//! - [`ClusterProc`]: a `redis-server` and N `chat-server`s of one room
//!   (`--cluster N`); [`Target`] then spreads the clients over the servers
//!   and reports Redis's CPU apart.
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
pub mod ws;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server under test: where it listens and which process it is; for
/// a cluster, the other servers of the room and its Redis too.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its listening address.
    pub addr: SocketAddr,
    /// Its web port (HTTP and WebSocket), when it listens on one.
    pub web: Option<SocketAddr>,
    /// Its process id (for `/proc/PID/stat` and `/proc/PID/status`).
    pub pid: u32,
    /// The other servers of its cluster (address, process id): clients are
    /// spread over all of them, round robin, and their CPU counts as the
    /// server's.
    pub more: Vec<(SocketAddr, u32)>,
    /// The cluster's Redis, if any (its CPU is reported apart).
    pub redis: Option<Redis>,
    /// The clients' TLS configuration when it speaks TLS there.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// One server alone.
    pub fn single(addr: SocketAddr, pid: u32) -> Target {
        Target {
            addr,
            web: None,
            pid,
            more: Vec::new(),
            redis: None,
            tls: None,
        }
    }

    /// Every server's address, the first one first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr)
            .chain(self.more.iter().map(|(a, _)| *a))
            .collect()
    }

    /// Every server's process id.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.pid)
            .chain(self.more.iter().map(|(_, p)| *p))
            .collect()
    }
}

/// A `redis-server` the bench started for a cluster.
#[derive(Debug, Clone, Copy)]
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its process id.
    pub pid: u32,
}

impl Redis {
    /// `INFO SECTION`, as `redis-cli` prints it (None if it cannot).
    fn info(&self, section: &str) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", section])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// CPU seconds it used so far: `used_cpu_user + used_cpu_sys` of
    /// `INFO cpu` (its rusage; `/proc/PID/stat` if `redis-cli` fails).
    pub fn cpu(&self) -> f64 {
        let from_info = self.info("cpu").and_then(|text| {
            let field = |name: &str| -> Option<f64> {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
                    .and_then(|v| v.parse().ok())
            };
            Some(field("used_cpu_user")? + field("used_cpu_sys")?)
        });
        from_info.unwrap_or_else(|| sys::process_cpu(self.pid).unwrap_or(f64::NAN))
    }

    /// `EVAL` calls so far (`INFO commandstats`; 0 if unreadable).
    pub fn evals(&self) -> u64 {
        self.info("commandstats")
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("cmdstat_eval:calls="))
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }
}

/// A cluster the bench started: one `redis-server` (nothing kept on disk,
/// in a directory of its own) and N `chat-server`s of one room; all killed
/// when dropped.
pub struct ClusterProc {
    redis: Child,
    /// Where Redis listens and which process it is.
    pub redis_at: Redis,
    /// Redis's working directory, removed when dropped.
    dir: PathBuf,
    /// The servers, in order.
    pub servers: Vec<ServerProc>,
    /// The Redis command line, for the report.
    pub command: String,
}

impl ClusterProc {
    /// Starts `redis-server` on a free port of 127.0.0.1 (pinned like the
    /// servers), then `n` servers as [`ServerProc::spawn`] does, each with
    /// `--redis` pointing at it. On a machine with as few cores as this
    /// one, the whole server side shares `cpu`: the same budget as one
    /// server alone.
    pub fn spawn(
        path: &Path,
        n: usize,
        cpu: Option<usize>,
        max_clients: usize,
        extra: &[String],
    ) -> io::Result<ClusterProc> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir =
            std::env::temp_dir().join(format!("chat-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let pinned = cpu.filter(|_| have_taskset());
        let mut cmd = match pinned {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg("redis-server");
                c
            }
            None => Command::new("redis-server"),
        };
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let command = format!(
            "{} {}",
            cmd.get_program().to_string_lossy(),
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut redis = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("redis-server: {e} (Debian: apt-get install redis-server)"),
            )
        })?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if redis.try_wait()?.is_some() || start.elapsed() > Duration::from_secs(10) {
                let _ = redis.kill();
                let _ = redis.wait();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(io::Error::other(format!("{command}: not accepting")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let redis_at = Redis {
            port,
            pid: redis.id(),
        };
        let mut cluster = ClusterProc {
            redis,
            redis_at,
            dir,
            servers: Vec::new(),
            command,
        };
        let mut args = vec!["--redis".to_string(), format!("redis://127.0.0.1:{port}")];
        args.extend(extra.iter().cloned());
        for _ in 0..n {
            cluster
                .servers
                .push(ServerProc::spawn(path, cpu, max_clients, &args)?);
        }
        Ok(cluster)
    }

    /// The servers (clients spread over them) and Redis.
    pub fn target(&self) -> Target {
        let first = &self.servers[0].target;
        Target {
            addr: first.addr,
            web: None,
            pid: first.pid,
            more: self.servers[1..]
                .iter()
                .map(|s| (s.target.addr, s.target.pid))
                .collect(),
            redis: Some(self.redis_at),
            tls: None,
        }
    }
}

impl Drop for ClusterProc {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
        Self::spawn_with(path, cpu, max_clients, extra, None, false)
    }

    /// [`ServerProc::spawn`], also listening for WebSocket clients:
    /// `--web-port` on a free port (or the one `extra` names), which the
    /// target's `web` gives.
    pub fn spawn_web(
        path: &Path,
        cpu: Option<usize>,
        max_clients: usize,
        extra: &[String],
    ) -> io::Result<ServerProc> {
        Self::spawn_with(path, cpu, max_clients, extra, None, true)
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
        let mut s = Self::spawn_with(path, cpu, max_clients, extra, Some(&certs), false)?;
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
        web: bool,
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
        let given = |flag: &str| flag_value(extra, flag).is_some();
        let mut web_port = flag_value(extra, "--web-port").and_then(|v| v.parse().ok());
        if web && web_port.is_none() {
            let p = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            args.extend(["--web-port".to_string(), p.to_string()]);
            web_port = Some(p);
        }
        // A server from before the web page (a `-b REV` "before" run) has no
        // web listener and does not know the flag.
        if web_port.is_none()
            && !extra.iter().any(|a| a == "--no-web")
            && knows_flag(path, "--no-web")
        {
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
        let mut s = Self::start(path, &args, cpu, port)?;
        s.target.web = web_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        Ok(s)
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
            target: Target::single(addr, pid),
            command,
            _certs: None,
        })
    }
}

/// The value of `flag` in `args`, given as `FLAG=VALUE` or `FLAG VALUE`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag).and_then(|v| v.strip_prefix('='))
        }
    })
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the chat-server at `path` lists `flag` in its `--help`.
fn knows_flag(path: &Path, flag: &str) -> bool {
    std::process::Command::new(path)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}
