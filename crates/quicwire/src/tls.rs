//! What TLS needs from the machine, which the engine (no I/O) cannot read itself: the
//! system's trusted roots, and a one-time warning for `insecure`. The rules live in
//! `quicwire_core::tls`.

use std::sync::atomic::{AtomicBool, Ordering};

pub use quicwire_core::tls::{
    client_config, generate_dev_cert, server_config, ClientTls, DevCert, ServerTls, Validity,
};
use rustls::pki_types::CertificateDer;

static INSECURE_WARNED: AtomicBool = AtomicBool::new(false);

/// The system's trusted roots (the platform's certificate store).
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

/// Says once per process that certificates are not checked.
pub fn warn_insecure() {
    if !INSECURE_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("quicwire: insecure: true, server certificates are NOT verified");
    }
}
