//! TLS setup for the native runtime: the rules live in `quicwire_core::tls`; this adds the
//! system roots (read from disk) and a one-time warning for `insecure`.

use std::sync::atomic::{AtomicBool, Ordering};

pub use quicwire_core::tls::{generate_dev_cert, server_config, ClientTls, DevCert, ServerTls};
use quicwire_core::Result;

static INSECURE_WARNED: AtomicBool = AtomicBool::new(false);

/// The client configuration, with the system roots when no `ca` is given.
pub fn client_config(tls: &ClientTls) -> Result<rustls::ClientConfig> {
    if tls.insecure && !INSECURE_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("quicwire: insecure: true, server certificates are NOT verified");
    }
    quicwire_core::tls::client_config(tls, || rustls_native_certs::load_native_certs().certs)
}
