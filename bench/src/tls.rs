//! `--tls`: the certificate the bench makes for the server it starts, the
//! clients' TLS configuration, and the `handshakes` scenario.
//!
//! The certificate is made at run time (rcgen, ECDSA P-256, for `localhost`)
//! into a directory of the bench's own that is removed with the server, so
//! no key is kept anywhere. Clients check it as a real client would (it is
//! their only trusted root) and speak TLS 1.3. The fleet's clients do TLS in
//! the fleet's one mio loop ([`crate::fleet`]); `handshakes` has a loop of
//! its own, since its connections live for one handshake each.

use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use slab::Slab;

use crate::hist::Histogram;
use crate::scenario::{dur, jnum, server_cpu, thousands};
use crate::sys::{self, now_ns};
use crate::Target;

/// The name the certificate is for and the clients ask for.
pub const HOST: &str = "localhost";

/// The files a TLS server is started with; removed when dropped.
#[derive(Debug)]
pub struct Certs {
    /// The directory holding them.
    dir: PathBuf,
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The certificate, for the clients' trust store.
    der: rustls::pki_types::CertificateDer<'static>,
}

impl Certs {
    /// A new self-signed certificate for [`HOST`] and its key, in a fresh
    /// directory under the system's temporary directory.
    pub fn make() -> io::Result<Certs> {
        let other = |e: rcgen::Error| io::Error::other(e.to_string());
        let key = rcgen::KeyPair::generate().map_err(other)?;
        let cert = rcgen::CertificateParams::new(vec![HOST.to_owned()])
            .and_then(|p| p.self_signed(&key))
            .map_err(other)?;
        let dir = std::env::temp_dir().join(format!("chat-bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem())?;
        std::fs::write(&k, key.serialize_pem())?;
        Ok(Certs {
            dir,
            cert: c,
            key: k,
            der: cert.der().clone(),
        })
    }

    /// A client configuration that trusts this certificate only; TLS 1.3;
    /// with `resume`, sessions are resumed from the server's tickets.
    pub fn client(&self, resume: bool) -> io::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.der.clone())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io::Error::other(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resume {
            config.resumption = Resumption::disabled();
        }
        Ok(Arc::new(config))
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client session for [`HOST`] whose buffers never refuse plaintext (the
/// fleet decides what it sends).
pub fn session(config: &Arc<ClientConfig>) -> io::Result<ClientConnection> {
    let name = ServerName::try_from(HOST).map_err(|e| io::Error::other(e.to_string()))?;
    let mut c =
        ClientConnection::new(config.clone(), name).map_err(|e| io::Error::other(e.to_string()))?;
    c.set_buffer_limit(None);
    Ok(c)
}

/// Writes the session's records until none is left or the socket is full.
pub fn send_records(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What `handshakes` measured.
pub struct Handshakes {
    /// Sessions resumed from a ticket (asked for).
    pub resume: bool,
    /// Connections at a time.
    pub inflight: usize,
    /// Handshakes completed (greeting read) in the window.
    pub done: u64,
    /// Of those, resumed.
    pub resumed: u64,
    /// Connections that failed.
    pub failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Seconds measured.
    pub span: f64,
    /// Server CPU seconds in the window.
    pub server_cpu: f64,
    /// Bench CPU seconds in the window.
    pub bench_cpu: f64,
    /// Connect to greeting.
    pub latency: Histogram,
}

impl Handshakes {
    /// Handshakes per second.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.span
    }

    /// Server CPU per handshake, µs.
    pub fn us_per_handshake(&self) -> f64 {
        self.server_cpu * 1e6 / self.done.max(1) as f64
    }

    /// True when some completed and none failed.
    pub fn ok(&self) -> bool {
        self.done > 0 && self.failed == 0
    }

    /// The readable report.
    pub fn text(&self) -> String {
        format!(
            "handshakes ({}, {} at a time): {}/s ({} in {:.1} s, {} resumed), {} failed{}; connect to greeting p50 {} p99 {}; server CPU {:.1} µs per handshake ({:.0} % of a core), bench {:.0} %\n",
            if self.resume { "TLS 1.3, resumed" } else { "TLS 1.3, full" },
            self.inflight,
            thousands(self.rate()),
            thousands(self.done as f64),
            self.span,
            thousands(self.resumed as f64),
            self.failed,
            self.first_error.as_ref().map_or(String::new(), |e| format!(" (first: {e})")),
            dur(self.latency.quantile(0.5)),
            dur(self.latency.quantile(0.99)),
            self.us_per_handshake(),
            100.0 * self.server_cpu / self.span,
            100.0 * self.bench_cpu / self.span,
        )
    }

    /// The JSON report.
    pub fn json(&self) -> String {
        format!(
            "{{\"scenario\":\"handshakes\",\"resume\":{},\"inflight\":{},\"done\":{},\"resumed\":{},\"failed\":{},\"per_s\":{},\"server_us_per_handshake\":{},\"p50_ns\":{},\"p99_ns\":{}}}",
            self.resume,
            self.inflight,
            self.done,
            self.resumed,
            self.failed,
            jnum(self.rate()),
            jnum(self.us_per_handshake()),
            self.latency.quantile(0.5),
            self.latency.quantile(0.99),
        )
    }
}

/// One connection of `handshakes`.
struct Shake {
    sock: TcpStream,
    tls: ClientConnection,
    /// When it connected, ns.
    start: u64,
}

/// Opens connections to `target` (`inflight` at a time) for `duration`
/// seconds after a second of warm-up; each makes a TLS handshake, reads
/// the server's greeting and is closed with a reset, and a new one takes
/// its place.
pub fn handshakes(
    target: &Target,
    config: &Arc<ClientConfig>,
    resume: bool,
    inflight: usize,
    duration: f64,
) -> io::Result<Handshakes> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut shakes: Slab<Shake> = Slab::with_capacity(inflight);
    let mut raw = vec![0u8; 64 * 1024];
    let mut plain = vec![0u8; 16 * 1024];
    let start = now_ns();
    let from = start + 1_000_000_000;
    let to = from + (duration * 1e9) as u64;
    let mut out = Handshakes {
        resume,
        inflight,
        done: 0,
        resumed: 0,
        failed: 0,
        first_error: None,
        span: duration,
        server_cpu: 0.0,
        bench_cpu: 0.0,
        latency: Histogram::new(),
    };
    let (mut cpu0, mut me0) = (f64::NAN, 0.0);
    let mut measuring = false;
    loop {
        let now = now_ns();
        if !measuring && now >= from {
            measuring = true;
            cpu0 = server_cpu(target);
            me0 = sys::self_cpu();
        }
        if now >= to {
            break;
        }
        while shakes.len() < inflight {
            open(&mut poll, &mut shakes, target.addr, config)?;
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in events.iter() {
            let key = ev.token().0;
            let Some(s) = shakes.get_mut(key) else {
                continue;
            };
            match step(s, &mut raw, &mut plain) {
                Ok(false) => {}
                Ok(true) => {
                    let s = shakes.remove(key);
                    if measuring {
                        out.done += 1;
                        out.latency.record(now_ns() - s.start);
                        if s.tls.handshake_kind() == Some(HandshakeKind::Resumed) {
                            out.resumed += 1;
                        }
                    }
                    close(s, &mut poll);
                }
                Err(e) => {
                    out.failed += 1;
                    out.first_error.get_or_insert_with(|| e.to_string());
                    close(shakes.remove(key), &mut poll);
                }
            }
        }
    }
    out.server_cpu = server_cpu(target) - cpu0;
    out.bench_cpu = sys::self_cpu() - me0;
    for s in shakes.drain() {
        crate::fleet::set_linger_zero(s.sock.as_raw_fd());
    }
    Ok(out)
}

fn open(
    poll: &mut Poll,
    shakes: &mut Slab<Shake>,
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> io::Result<()> {
    let entry = shakes.vacant_entry();
    let mut sock = TcpStream::connect(addr)?;
    poll.registry().register(
        &mut sock,
        Token(entry.key()),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    entry.insert(Shake {
        sock,
        tls: session(config)?,
        start: now_ns(),
    });
    Ok(())
}

fn close(mut s: Shake, poll: &mut Poll) {
    let _ = poll.registry().deregister(&mut s.sock);
    crate::fleet::set_linger_zero(s.sock.as_raw_fd());
}

/// Moves one handshake on; true once the greeting (a whole line) is in.
fn step(s: &mut Shake, raw: &mut [u8], plain: &mut [u8]) -> io::Result<bool> {
    send_records(&mut s.tls, &mut s.sock)?;
    loop {
        let n = match s.sock.read(raw) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "closed by the server",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &raw[..n];
        while !rest.is_empty() {
            s.tls.read_tls(&mut rest)?;
            s.tls
                .process_new_packets()
                .map_err(|e| io::Error::other(e.to_string()))?;
            match s.tls.reader().read(plain) {
                Ok(m) if plain[..m].contains(&b'\n') => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        send_records(&mut s.tls, &mut s.sock)?;
    }
}
