//! TLS under the transports (PROTOCOL.md section 11): the certificate and
//! key (`--tls-cert`, `--tls-key`, re-read on SIGHUP), and a connection's
//! TLS session driven by the loop the way rustls' own mio example does it.
//!
//! TLS is a layer between the socket and the transport, not a transport:
//! [`read`] gives the plaintext of what arrived (`read_tls` until the socket
//! would block, `process_new_packets`, then the session's reader), which
//! goes to the same line framer or WebSocket codec as plain bytes; [`write()`]
//! hands the session a connection's private bytes and its range of a
//! broadcast log in one `write_vectored` (so one turn's lines leave as one
//! batch of records, not a record per line), then `write_tls` while it
//! wants to write. The room, the broadcast logs and the flush do not know.
//!
//! Bounds: the session's outgoing buffer is capped at [`BUFFER_LIMIT`], so
//! plaintext that the peer does not take waits in the connection's own
//! buffer, where `--max-pending` judges it, and a peer that never reads
//! cannot grow rustls' queue. rustls keeps its incoming plaintext under 16
//! KiB (we drain it before each `read_tls`) and its record buffer at one
//! record (a 4 KiB read buffer while idle).
//!
//! A line-protocol connection on the TLS port joins the room (and gets the
//! greeting) only once its handshake is done; before that it has no session,
//! like a web connection still reading its request, so a handshake that
//! fails or stalls is closed quietly (debug log) at `--login-timeout`.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use super::conn::{mark_dirty, Kind, Transport};
use super::Server;

/// Most bytes of records a session holds for sending: a little over one full
/// record. More plaintext waits in the connection's buffer.
pub const BUFFER_LIMIT: usize = 16 * 1024 + 256;

/// The server's certificate chain and key, and the TLS configuration made
/// from them; new connections get the configuration in use when they arrive.
#[derive(Debug)]
pub struct Certs {
    /// `--tls-cert`: the chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    cert: PathBuf,
    /// `--tls-key`: the leaf's private key (e.g. `privkey.pem`).
    key: PathBuf,
    /// The configuration new sessions start from (replaced on a reload).
    config: Arc<ServerConfig>,
}

impl Certs {
    /// Reads and checks the pair; an error is one line naming the file.
    pub fn load(cert: &Path, key: &Path) -> Result<Certs, String> {
        Ok(Certs {
            config: config(cert, key)?,
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Reads the files again (SIGHUP). On an error the pair in use stays.
    pub fn reload(&mut self) -> Result<(), String> {
        self.config = config(&self.cert, &self.key)?;
        Ok(())
    }

    /// The certificate file, for logs.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// A server session for a new connection, its buffers bounded.
    pub fn session(&self) -> Result<ServerConnection, rustls::Error> {
        let mut s = ServerConnection::new(self.config.clone())?;
        s.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(s)
    }
}

/// The TLS configuration for a certificate file and a key file: TLS 1.3 and
/// 1.2 only, no client certificates, ring's cryptography.
fn config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let c = cert.display();
    let k = key.display();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error("certificate", &c, e))?;
    if chain.is_empty() {
        return Err(pem_error("certificate", &c, pem::Error::NoItemsFound));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("key", &k, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("the TLS key {k} does not match the certificate {c}")
            }
            e => format!("cannot use the TLS key {k} with the certificate {c}: {e}"),
        })?;
    Ok(Arc::new(config))
}

/// One line about a PEM file that cannot be used.
fn pem_error(what: &str, file: &dyn std::fmt::Display, e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot read the TLS {what} {file}: {e}"),
        pem::Error::NoItemsFound => format!("no TLS {what} found in {file} (PEM expected)"),
        e => format!("the TLS {what} {file} is not valid PEM: {e}"),
    }
}

/// Reads plaintext from `tls` over `sock` into `buf`: what the session has
/// decrypted, else records from the socket until some plaintext comes out.
/// `Ok(0)` is the end (close_notify, or EOF from the socket), `WouldBlock`
/// that the socket has nothing more now; a TLS error is `InvalidData`, after
/// the alert it causes was offered to the socket.
pub fn read(tls: &mut ServerConnection, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            // EOF without close_notify: for a chat it is just an EOF.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        match tls.read_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            // The session queued an alert: a last try to say why.
            let _ = tls.write_tls(sock);
            return Err(io::Error::new(ErrorKind::InvalidData, e));
        }
    }
}

/// Hands `own` then `shared` plaintext to `tls` in one go (as much as its
/// bounded buffer takes) and writes records to `sock` until it has none or
/// the socket is full. Returns the plaintext bytes taken; `WouldBlock` when
/// nothing could move. Nothing to offer and every record written is `Ok(0)`.
pub fn write(
    tls: &mut ServerConnection,
    sock: &mut TcpStream,
    own: &[u8],
    shared: &[u8],
) -> io::Result<usize> {
    send_records(tls, sock)?;
    if own.is_empty() && shared.is_empty() {
        return Ok(0);
    }
    let taken = tls
        .writer()
        .write_vectored(&[IoSlice::new(own), IoSlice::new(shared)])?;
    if taken == 0 {
        // Still handshaking, its plaintext buffer full.
        return Err(ErrorKind::WouldBlock.into());
    }
    match send_records(tls, sock) {
        Err(e) if e.kind() != ErrorKind::WouldBlock => Err(e),
        _ => Ok(taken),
    }
}

/// Writes the session's records to `sock` until none is left (`Ok`) or the
/// socket is full (`WouldBlock`).
fn send_records(tls: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends the session politely: a close_notify, written if the socket takes
/// it now (it is tiny and our output was just flushed).
pub fn close_notify(tls: &mut ServerConnection, sock: &mut TcpStream) {
    tls.send_close_notify();
    let _ = send_records(tls, sock);
}

impl Server {
    /// After a read from `key`: what its session has to send (handshake,
    /// tickets, alerts) is flushed this turn, and a line-protocol connection
    /// whose handshake just finished joins the room.
    pub(super) fn tls_progress(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some((wants_write, handshaking)) = c
            .tls
            .as_deref()
            .map(|t| (t.wants_write(), t.is_handshaking()))
        else {
            return;
        };
        if wants_write {
            mark_dirty(c, key, &mut self.dirty);
        }
        let joins = c.transport.is_none() && matches!(c.kind, Kind::Lines(_));
        if !joins || handshaking || c.doomed || c.closing.is_some() {
            return;
        }
        c.transport = Some(Transport::Tcp);
        self.stats.tcp += 1;
        log::info!("conn {key} connected from {} (TLS)", c.peer);
        let (room, mut wire) = self.wire(now);
        room.connect(key, &mut wire);
    }

    /// SIGHUP: reads the certificate and key again. New connections get the
    /// new pair; open ones keep their session. A bad pair is logged and the
    /// one in use stays.
    pub(super) fn reload_certs(&mut self) {
        let Some(certs) = self.certs.as_mut() else {
            log::info!("SIGHUP: no TLS certificate to reload");
            return;
        };
        match certs.reload() {
            Ok(()) => log::info!(
                "SIGHUP: TLS certificate reloaded from {}; new connections use it",
                certs.cert_path().display()
            ),
            Err(e) => log::error!("SIGHUP: {e}; the certificate in use stays"),
        }
    }
}
