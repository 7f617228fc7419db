//! TLS setup for the native runtime: the rules live in `quicwire_core::tls`; this adds the
//! system roots (read from disk), a one-time warning for `insecure`, and the quinn
//! configurations every quicwire endpoint (and the quinn-only benchmarks) start from.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use quicwire_core::tls::{generate_dev_cert, server_config, ClientTls, DevCert, ServerTls};
use quicwire_core::{Error, ErrorCode, Result, TransportConfig};

static INSECURE_WARNED: AtomicBool = AtomicBool::new(false);

/// The client configuration, with the system roots when no `ca` is given.
pub fn client_config(tls: &ClientTls) -> Result<rustls::ClientConfig> {
    if tls.insecure && !INSECURE_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("quicwire: insecure: true, server certificates are NOT verified");
    }
    quicwire_core::tls::client_config(tls, || rustls_native_certs::load_native_certs().certs)
}

/// quinn's client side with quicwire's TLS and transport settings, for a path that is not
/// loopback (a loopback connection swaps in `transport_config(transport, true)`).
pub fn quinn_client_config(
    tls: &ClientTls,
    transport: &TransportConfig,
) -> Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(tls)?)
        .map_err(|e| Error::new(ErrorCode::Tls, e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(quicwire_core::quic::transport_config(transport, false)?);
    Ok(config)
}

/// quinn's server side with quicwire's TLS and transport settings, for a path that is not
/// loopback (a loopback connection swaps in `transport_config(transport, true)`).
pub fn quinn_server_config(
    tls: &ServerTls,
    transport: &TransportConfig,
) -> Result<quinn::ServerConfig> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_config(tls)?)
        .map_err(|e| Error::new(ErrorCode::Tls, e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(quicwire_core::quic::transport_config(transport, false)?);
    Ok(config)
}
