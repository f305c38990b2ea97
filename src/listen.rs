//! What the network front ends (`serve`, `web`) share about listening: TLS required off
//! loopback, the certificate and key files, and secrets drawn from the system's random source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::error::{JcsqlError, Result};

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `localhost`, `127.0.0.1`, `::1` and the rest of 127/8.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses an address off this machine without TLS: `what` names the front end in the message.
pub fn require_tls_off_loopback(what: &str, host: &str, tls: Option<&TlsFiles>) -> Result<()> {
    if !is_loopback(host) && tls.is_none() {
        return Err(JcsqlError::Config(format!(
            "{what} on {host} needs --tls-cert and --tls-key: off this machine, queries and answers would cross the network unencrypted (or use --host 127.0.0.1)"
        )));
    }
    Ok(())
}

pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let unreadable = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        JcsqlError::Config(format!("cannot read the TLS {what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| unreadable("certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(unreadable("certificate", &files.cert, &"no PEM certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| unreadable("key", &files.key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| JcsqlError::Config(format!("the TLS certificate and key do not fit together: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Listens on `host:port` (port 0: any free port).
pub async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port)).await.map_err(|e| {
        JcsqlError::Config(format!(
            "cannot listen on {host}:{port}: {e} (choose another --port, or 0 for any free one)"
        ))
    })
}

pub fn local_addr(listener: &tokio::net::TcpListener) -> Result<std::net::SocketAddr> {
    listener.local_addr().map_err(|e| JcsqlError::Config(format!("cannot read the listening address: {e}")))
}

/// An address's host as a URL writes it (`[::1]` for IPv6).
pub fn url_host(addr: &std::net::SocketAddr) -> String {
    match addr.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    // The system's random source does not fail on Linux; a zero salt would still be correct.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
}

/// A fresh secret: 24 characters from an alphabet that needs no quoting in a URL or shell.
pub fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random_bytes::<24>().iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}
