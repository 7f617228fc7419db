//! quicwire-core: every rule of the quicwire protocol and none of its I/O.
//!
//! The frame codec, the HELLO negotiation, option validation, pool policy, stats shapes and
//! error codes live here so that the native runtime (`quicwire`) and the wasm engine apply
//! exactly the same rules. Nothing here touches a socket, a clock or a thread.

pub mod admission;
pub mod carrier;
pub mod config;
pub mod error;
pub mod frame;
pub mod hello;
pub mod pool;
#[cfg(feature = "quic")]
pub mod quic;
pub mod stats;
pub mod sync;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "udp")]
pub mod udp;
pub mod varint;

pub use admission::{Admission, Decision, ServerLimits};
pub use carrier::Carrier;
pub use config::{CongestionControl, TransportConfig};
pub use error::{app_code, Error, ErrorCode, Result};
pub use frame::{Frame, FrameDecoder};
pub use hello::{
    alpn_version, Encoding, Hello, Negotiated, ALPNS, ALPN_V1, ALPN_V2, ALPN_V3, PROTOCOL_VERSION,
    WEBTRANSPORT_VERSION,
};
pub use pool::{PoolCounters, PoolKey, PoolTable};
pub use stats::{ConnectionStats, PoolStats};
