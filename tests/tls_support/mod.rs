//! Certificates for the TLS tests, made at test time with rcgen (nothing
//! secret is in the repository), and a server started with them.
//!
//! Use with `mod common; mod tls_support;` in a test file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::common::Server;

/// A test CA and the files it signs, in a temporary directory.
pub struct Pki {
    /// Where the files are (removed when dropped).
    dir: tempfile::TempDir,
    /// The CA, to sign server certificates.
    issuer: Issuer<'static, KeyPair>,
    /// `ca.pem`: the CA's certificate, for `--ca` and test clients.
    pub ca: PathBuf,
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        valid_around_now(&mut params);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            issuer: Issuer::new(params, key),
            dir,
            ca,
        }
    }

    /// A server certificate for `names` and its key, written to
    /// `TAG-cert.pem` and `TAG-key.pem`; returns the paths and the
    /// certificate's DER.
    pub fn server(&self, tag: &str, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        valid_around_now(&mut params);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let c = self.path(&format!("{tag}-cert.pem"));
        let k = self.path(&format!("{tag}-key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k, cert.der().to_vec())
    }

    /// A file in the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// Valid from last year to next year, as a real certificate would be (a
/// browser refuses rcgen's default of 1975 to 4096).
fn valid_around_now(params: &mut CertificateParams) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let year = 1970 + (secs / 31_556_952) as i32;
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 1, 12, 31);
}

/// Starts a server with the certificate `cert` and key `key`, and `args`.
pub fn tls_server(cert: &Path, key: &Path, args: &[&str]) -> Server {
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut all = vec!["--tls-cert", c, "--tls-key", k];
    all.extend_from_slice(args);
    Server::start(&all)
}
