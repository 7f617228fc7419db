//! quicwire: a QUIC message transport on quinn + tokio, for Rust programs. (The JS package
//! runs the sans-IO engine in `quicwire-engine` instead, natively or in WebAssembly.)
//!
//! [`Client`] keeps a pool of connections keyed by `host:port`; [`Server`] accepts them.
//! Both hand incoming traffic to a [`Handler`]. Messages go over a long-lived channel stream
//! per connection and direction, requests over a fresh stream each. The protocol rules
//! (framing, negotiation, limits, pool policy) come from `quicwire-core`.

pub mod client;
pub mod connection;
mod eager;
pub mod events;
pub mod server;
pub mod socket;
pub mod tls;

pub use client::{Client, ClientConfig};
pub use connection::{Connection, Handler, IncomingRequest, Receipt};
pub(crate) use eager::eagerly;
pub use events::{event_queue, Event};
/// The protocol rules (codec, negotiation, limits), for raw-peer tests and tools.
pub use quicwire_core as core;
pub use quicwire_core::{
    app_code, ConnectionStats, Encoding, Error, ErrorCode, PoolKey, PoolStats, Result,
    ServerLimits, TransportConfig,
};
pub use server::{Server, ServerConfig, ServerStats};
pub use tls::{generate_dev_cert, ClientTls, DevCert, ServerTls};
