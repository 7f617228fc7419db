//! quicwire's engine, sans IO: quinn-proto state machines and quicwire sessions for one
//! endpoint (a client or a server) and its connections. The protocol exists here once.
//!
//! There are no sockets, clocks or threads in here. A driver feeds the engine the datagrams
//! it received and the time, sends what it hands out, and wakes it when its next deadline
//! passes; the application's calls go in as methods and come back as [`Event`]s. Three
//! drivers run it: the `quicwire` crate (tokio), quicwire-node (Node's event loop) and
//! quicwire-wasm (WebAssembly, driven from JavaScript), the last two through [`abi`], the
//! batched layout JavaScript speaks.
//!
//! - [`engine`]: the endpoint and its drive loop ([`Engine`]);
//! - `session`: the quicwire protocol on one QUIC connection (control stream, HELLO,
//!   channels, ACKs, requests, GOAWAY);
//! - [`outbox`]: messages on their way out, and the send buffer that bounds them;
//! - [`config`], [`event`], [`stats`]: what goes in and what comes out;
//! - [`sim`]: engines on a simulated network with a virtual clock, for tests.

pub mod abi;
pub mod config;
mod conn;
mod datagram;
pub mod engine;
pub mod event;
mod ids;
pub mod outbox;
mod qlog;
mod session;
pub mod sim;
pub mod stats;
mod streams;
pub mod web;
pub mod webtransport;

pub use config::{ClientConfig, ServerConfig, WebTransportConfig};
pub use datagram::DATAGRAM_QUEUE;
pub use engine::Engine;
pub use event::{ConnectionInfo, Event, Receipt};
pub use ids::{ConnId, MAX_ID};
pub use outbox::{Outbox, SendOptions, LARGE_BODY};
pub use session::{RequestOptions, LAZY_ACK_DELAY};
pub use stats::{ConnectionEntry, ConnectionState, EngineStats};
/// The clock type every entry point takes `now` in (std's, or the browser's in wasm).
pub use web_time::Instant;
