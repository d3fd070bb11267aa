//! `chat-client --tls` (PROTOCOL.md section 11): whom to trust, the
//! handshake, and the connection both threads write through.
//!
//! The server's certificate is checked against the system's trust store
//! (`rustls-native-certs`: `/etc/ssl/certs` and whatever the administrator
//! added there, so a company CA works as it does for other programs) or the
//! CA file given with `--ca`, and against the host name the client was given.
//! `--insecure` skips the check (the handshake's signatures are still
//! verified, so the server must hold the key of the certificate it shows).
//!
//! The handshake runs on the main thread before the stdin thread may write.
//! Afterwards the session lives in [`Conn`], behind the client's one lock:
//! the socket thread reads raw bytes from its own handle of the socket
//! *without* the lock (blocking, with a timeout), then takes the lock only to
//! hand them to the session ([`Conn::decrypt`]); the stdin thread takes it to
//! encrypt and write ([`Conn::write_all`]). So neither thread ever waits for
//! the network while holding the lock, as with a plain socket.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};
use rustls::{RootCertStore, SignatureScheme};

/// Whom the client trusts for the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's trust store.
    System,
    /// The CA certificate(s) in this PEM file (`--ca`).
    Ca(PathBuf),
    /// Nobody is checked (`--insecure`).
    Insecure,
}

/// The client's TLS configuration for `trust`: TLS 1.3 and 1.2, ring's
/// cryptography. An error is one line for the user.
pub fn config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Trust::System => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Trust::Ca(path) => builder
            .with_root_certificates(ca_roots(path)?)
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system's trusted CAs.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::debug!("system certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(
            "no trusted CA certificates found on this system (install the \
                    ca-certificates package), or give the server's CA with --ca"
                .into(),
        );
    }
    Ok(roots)
}

/// The CAs in the PEM file `path`.
fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let file = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the CA file {file}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("the CA file {file} holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificate found in the CA file {file}"));
    }
    Ok(roots)
}

/// `--insecure`: accepts any certificate for any name, but still checks
/// that the handshake was signed with the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum Failure {
    /// TLS itself failed (a certificate that does not check out, a peer that
    /// does not speak TLS): trying again would fail the same way.
    Fatal(String),
    /// The network failed: worth another try.
    Io(io::Error),
}

/// Makes the TLS handshake with `host` over `sock` (blocking, within the
/// socket's timeouts).
pub fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    sock: &TcpStream,
) -> Result<ClientConnection, Failure> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| Failure::Fatal(format!("{host:?} is not a valid host name for TLS")))?;
    let mut tls = ClientConnection::new(config.clone(), name)
        .map_err(|e| Failure::Fatal(format!("TLS set-up: {e}")))?;
    while tls.is_handshaking() {
        match tls.complete_io(&mut &*sock) {
            Ok((0, 0)) => {
                let e = io::Error::new(ErrorKind::UnexpectedEof, "closed during the TLS handshake");
                return Err(Failure::Io(e));
            }
            Ok(_) => {}
            Err(e) => return Err(failure(e, host)),
        }
    }
    Ok(tls)
}

/// Sorts a handshake error into fatal (TLS said no) and worth a retry.
fn failure(e: io::Error, host: &str) -> Failure {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return Failure::Io(e);
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for the name {host}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            c => format!(
                "the server's certificate is not trusted ({c}); give the CA that signed it \
                 with --ca, or --insecure to skip the check"
            ),
        },
        e => format!("TLS handshake failed: {e} (is this the server's TLS port?)"),
    };
    Failure::Fatal(why)
}

/// One connection as both threads use it: the socket, and over TLS its
/// session. Lives behind the client's lock.
#[derive(Debug)]
pub struct Conn {
    /// The socket (a handle of it; the socket thread reads from another).
    sock: TcpStream,
    /// The TLS session, with `--tls`.
    tls: Option<Box<ClientConnection>>,
}

impl Conn {
    /// A plain connection.
    pub fn plain(sock: TcpStream) -> Conn {
        Conn { sock, tls: None }
    }

    /// A connection over the TLS session `tls`.
    pub fn tls(sock: TcpStream, tls: ClientConnection) -> Conn {
        Conn {
            sock,
            tls: Some(Box::new(tls)),
        }
    }

    /// Writes all of `bytes` (encrypted, over TLS), blocking within the
    /// socket's write timeout.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            None => self.sock.write_all(bytes),
            Some(tls) => {
                tls.writer().write_all(bytes)?;
                send_records(tls, &mut self.sock)
            }
        }
    }

    /// Bytes the socket thread read: over TLS, their plaintext is appended
    /// to `plain` (and any answer the session owes is sent); otherwise they
    /// are appended as they are. `Ok(false)`: the server ended the session.
    pub fn decrypt(&mut self, raw: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            plain.extend_from_slice(raw);
            return Ok(true);
        };
        let mut rest = raw;
        while !rest.is_empty() {
            tls.read_tls(&mut rest)?;
            tls.process_new_packets()
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
            match tls.reader().read_to_end(plain) {
                Ok(_) => return Ok(false), // close_notify
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        send_records(tls, &mut self.sock)?;
        Ok(true)
    }

    /// Closes the socket both ways, so the socket thread's read ends at once.
    pub fn shutdown(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Another handle of the socket (to close it later without the lock).
    pub fn socket(&self) -> io::Result<TcpStream> {
        self.sock.try_clone()
    }
}

/// Writes every record the session has ready.
fn send_records(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(sock)? == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}
