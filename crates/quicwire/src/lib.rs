//! quicwire for Rust programs: a QUIC message transport with pooled connections, ordered
//! messages that resolve on delivery, and request/response, on tokio.
//!
//! The protocol is `quicwire-engine`'s, the same engine the npm package runs natively and in
//! WebAssembly; this crate drives it, as quinn drives quinn-proto: one task per endpoint
//! moves datagrams between the engine and its UDP socket (quinn-udp) and follows its timer.
//!
//! [`Client`] keeps a pool of connections keyed by `host:port`; [`Server`] accepts them.
//! Both hand incoming traffic to a [`Handler`] ([`event_queue`] makes one that queues
//! [`Event`]s). Messages go over a long-lived channel stream per connection and direction,
//! requests over a fresh stream each. To test code that uses them without sockets or
//! waiting, put them on a [`MemoryNetwork`] (`Client::in_memory`, `Server::bind_in_memory`)
//! under a paused tokio clock; to test the engine itself, [`engine::sim`].
//!
//! ```
//! use quicwire::{event_queue, generate_dev_cert, Client, ClientConfig, ClientTls, Event};
//! use quicwire::{Server, ServerConfig, ServerTls};
//!
//! # #[tokio::main] async fn main() -> quicwire::Result<()> {
//! let dev = generate_dev_cert(&["localhost".into()], None)?;
//! let (handler, mut events) = event_queue();
//! let tls = ServerTls { cert: dev.cert.clone(), key: dev.key };
//! let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::new(tls), handler)?;
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         if let Event::Request(req) = event {
//!             let echo = req.body().clone();
//!             let _ = req.respond(Ok(&echo)).await;
//!         }
//!     }
//! });
//! let (handler, _) = event_queue();
//! let tls = ClientTls { ca: Some(dev.cert), insecure: false };
//! let client = Client::new(ClientConfig { tls, ..Default::default() }, handler)?;
//! let conn = client.connect("localhost", server.local_addr().port()).await?;
//! conn.send(b"hello").await?; // the server's application has it
//! assert_eq!(&conn.request(b"ping").await?[..], b"ping");
//! # Ok(()) }
//! ```

pub mod client;
pub mod connection;
mod endpoint;
pub mod events;
pub mod memory;
pub mod server;
mod socket;
pub mod tls;
mod tunnel;
mod udp;

pub use client::{Client, ClientConfig};
pub use connection::{
    Connection, Handler, IncomingRequest, Queued, Receipt, RequestOptions, SendOptions,
};
pub use events::{event_queue, Event};
pub use memory::MemoryNetwork;
/// The protocol rules (codec, negotiation, limits), for raw-peer tests and tools.
pub use quicwire_core as core;
pub use quicwire_core::{
    app_code, CongestionControl, ConnectionStats, Encoding, Error, ErrorCode, PoolKey, PoolStats,
    Result, ServerLimits, TransportConfig,
};
/// The engine itself, and its simulated network for tests.
pub use quicwire_engine as engine;
pub use server::{Server, ServerConfig, ServerStats, WebTransportConfig};
pub use tls::{generate_dev_cert, ClientTls, DevCert, ServerTls, Validity};
pub use tunnel::Transport;
