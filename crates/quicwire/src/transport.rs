//! quinn transport settings derived from a validated [`TransportConfig`].

use std::sync::Arc;
use std::time::Duration;

use quicwire_core::config::initial_stream_credit;
use quicwire_core::{Error, Result, TransportConfig};
use quinn::{IdleTimeout, VarInt};

/// Uni streams a peer may open: its channel stream, with room for a replacement.
const MAX_UNI_STREAMS: u32 = 8;

pub(crate) fn quinn_transport(cfg: &TransportConfig) -> Result<Arc<quinn::TransportConfig>> {
    let mut t = quinn::TransportConfig::default();
    // Credit starts small and grows with use (Connection::grow_stream_credit).
    t.max_concurrent_bidi_streams(VarInt::from_u32(initial_stream_credit(
        cfg.max_concurrent_streams,
    )))
    .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
    .keep_alive_interval(Some(Duration::from_millis(cfg.keep_alive_ms)))
    .max_idle_timeout(Some(
        IdleTimeout::try_from(Duration::from_millis(cfg.keep_alive_ms.saturating_mul(3)))
            .map_err(|_| Error::invalid_argument("keepAliveMs is too large"))?,
    ))
    // Windows sized for loopback and LAN bulk transfer; memory is only used when filled.
    .stream_receive_window(VarInt::from_u32(8 << 20))
    .receive_window(VarInt::from_u32(32 << 20))
    .send_window(32 << 20);
    Ok(Arc::new(t))
}
