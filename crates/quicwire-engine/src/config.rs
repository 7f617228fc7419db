//! How an engine is set up: a client's or a server's settings, validated once by
//! `Engine::client` and `Engine::server` whatever drives the engine.

use quicwire_core::tls::{ClientTls, ServerTls};
use quicwire_core::{Encoding, ServerLimits, TransportConfig};
use rustls::pki_types::CertificateDer;

/// A client: its pool and transport settings, how it checks servers, what it offers.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub transport: TransportConfig,
    pub tls: ClientTls,
    /// Encodings to offer, preferred first (default: msgpack).
    pub encodings: Vec<Encoding>,
    /// The roots trusted when `tls.ca` is `None`: a driver that can read the system's
    /// certificate store passes them (reading it is I/O, which the engine does none of).
    pub system_roots: Vec<CertificateDer<'static>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            transport: TransportConfig::default(),
            tls: ClientTls::default(),
            encodings: vec![Encoding::Msgpack],
            system_roots: Vec::new(),
        }
    }
}

/// A server: its certificate, transport settings, what it accepts and its admission limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub transport: TransportConfig,
    pub tls: ServerTls,
    /// Encodings the server accepts (default: all).
    pub encodings: Vec<Encoding>,
    /// Connection caps and address validation.
    pub limits: ServerLimits,
    /// This server's index among workers sharing one UDP port (`udp::bind_workers`): its
    /// connection IDs start with it, so the port's routing program finds it. None: alone.
    pub worker: Option<u8>,
    /// Also accept WebTransport sessions (HTTP/3, ALPN `h3`); each runs a quicwire session
    /// inside. None: quicwire's ALPNs only.
    pub webtransport: Option<WebTransportConfig>,
}

/// Which WebTransport sessions a server accepts.
#[derive(Debug, Clone, Default)]
pub struct WebTransportConfig {
    /// The `:path` a CONNECT must ask for, e.g. "/quicwire".
    pub path: String,
    /// The pages' origins allowed (e.g. "https://app.example.com"), as browsers send them;
    /// empty: any. Others get 403.
    pub origins: Vec<String>,
}

impl ServerConfig {
    pub fn new(tls: ServerTls) -> Self {
        ServerConfig {
            transport: TransportConfig::default(),
            tls,
            encodings: Encoding::ALL.to_vec(),
            limits: ServerLimits::default(),
            worker: None,
            webtransport: None,
        }
    }
}
