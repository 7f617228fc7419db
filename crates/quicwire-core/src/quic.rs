//! What both engines take from quinn-proto alike: the QUIC transport settings derived from
//! a validated [`TransportConfig`], and how a connection ended, as a quicwire error.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn_proto::{ConnectionError, IdleTimeout, TransportErrorCode, VarInt};

use crate::config::{initial_stream_credit, MAX_LANES};
use crate::{app_code, CongestionControl, Error, ErrorCode, Result, TransportConfig};

/// Uni streams a peer may open: its control stream and a channel per lane, with room to spare.
const MAX_UNI_STREAMS: u32 = 2 * MAX_LANES;

/// The largest UDP payload an engine accepts (its `max_udp_payload_size` transport
/// parameter): the most IPv6 allows, so a loopback peer may send [`LOOPBACK_MTU`] datagrams.
pub const MAX_UDP_PAYLOAD: u16 = 65_527;

/// What quinn-proto buffers of outgoing QUIC datagrams (RFC 9221): small, so that they
/// wait in the engine's queue instead, which bounds and counts what it drops.
pub const DATAGRAM_SEND_BUFFER: usize = 64 << 10;

/// Datagram size on loopback, whose MTU is 64 KiB: under the IPv4 and IPv6 limits there.
pub const LOOPBACK_MTU: u16 = 65_000;

/// The most one UDP send carries, GSO batches included: an IP packet's 64 KiB less the IPv4
/// and UDP headers. Larger batches (of loopback-sized packets) go out in several sends.
pub const MAX_SEND: usize = 65_535 - 20 - 8;

/// How many bytes of a datagram, or of a GSO batch of `segment`-byte packets, go in one UDP
/// send: all of it, unless that is more than one send carries (whole packets each then).
pub fn send_size(len: usize, segment: Option<usize>) -> usize {
    match segment {
        Some(s) if len > MAX_SEND && s <= MAX_SEND => MAX_SEND / s * s,
        _ => len.max(1),
    }
}

/// Kernel socket buffer asked for each way (Linux caps it at net.core.rmem_max / wmem_max).
/// One server socket takes every client's packets: with the 208 KiB default, a burst such as
/// thousands of clients closing at once overflowed it, and each dropped packet then waited
/// for a QUIC retransmission.
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Whether `ip` is this host (IPv4-mapped IPv6 included): such a path has loopback's MTU.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// quinn-proto transport settings for `cfg` (the native engine's quinn re-exports the type),
/// on a `loopback` path or any other.
///
/// Elsewhere datagrams keep quinn's 1452-byte ceiling. On loopback they start at
/// [`LOOPBACK_MTU`]: 44 times fewer packets, so fewer encryptions, ACKs and system calls per
/// byte (bulk on loopback: 265 to 470-560 MB/s in the JS bench). The size is set rather than
/// searched for: quinn-proto reads each MTU probe's padding a byte at a time, which made a
/// search up to 64 KiB cost every new connection milliseconds. Should the path drop such
/// datagrams after all, quinn's black-hole detection falls back to 1200 bytes.
pub fn transport_config(
    cfg: &TransportConfig,
    loopback: bool,
) -> Result<Arc<quinn_proto::TransportConfig>> {
    transport(cfg, loopback).map(Arc::new)
}

/// [`transport_config`] unshared, for a caller that adds to it.
pub fn transport(cfg: &TransportConfig, loopback: bool) -> Result<quinn_proto::TransportConfig> {
    let mut t = quinn_proto::TransportConfig::default();
    // Credit starts small and grows with use, so idle connections stay small.
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
    .send_window(32 << 20)
    .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    // Ask the peer to acknowledge within 1 ms instead of the default 25 ms (the ACK
    // frequency extension; both ends are quinn). A lost tail packet is found by probe
    // timeout, which waits out the peer's ACK delay: over a link dropping 2 % of packets this
    // took 100 requests in flight from 11k to 24k req/s and p99 from 37 to 14 ms
    // (npm run bench:loss), with no cost on loopback.
    let mut ack = quinn_proto::AckFrequencyConfig::default();
    ack.max_ack_delay(Some(Duration::from_millis(1)));
    t.ack_frequency_config(Some(ack));
    // quinn's initial window is 14,720 bytes whatever the MTU: on loopback less than one
    // datagram, which would never be sent. Ten datagrams there, as RFC 9002 starts with.
    let window = loopback.then(|| 10 * u64::from(LOOPBACK_MTU));
    t.congestion_controller_factory(controller(cfg.congestion_control, window));
    if loopback {
        t.initial_mtu(LOOPBACK_MTU).mtu_discovery_config(None);
    }
    Ok(t)
}

/// quinn-proto's factory for `cc`, with its initial window set when given.
fn controller(
    cc: CongestionControl,
    initial_window: Option<u64>,
) -> Arc<dyn quinn_proto::congestion::ControllerFactory + Send + Sync> {
    use quinn_proto::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
    macro_rules! with_window {
        ($config:expr) => {{
            let mut config = $config;
            if let Some(w) = initial_window {
                config.initial_window(w);
            }
            Arc::new(config)
        }};
    }
    match cc {
        CongestionControl::Cubic => with_window!(CubicConfig::default()),
        CongestionControl::NewReno => with_window!(NewRenoConfig::default()),
        CongestionControl::Bbr => with_window!(BbrConfig::default()),
    }
}

/// Maps why a QUIC connection ended to a quicwire error.
pub fn connection_error(e: &ConnectionError, peer: &str) -> Error {
    use ConnectionError as C;
    let is_crypto = |code: TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match e {
        C::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            if close.error_code.into_inner() == u64::from(app_code::NEGOTIATION) {
                Error::new(
                    ErrorCode::Negotiation,
                    format!("negotiation with {peer} failed: {reason}"),
                )
            } else {
                Error::closed(format!("{peer} closed the connection ({reason})"))
            }
        }
        C::TransportError(t) if is_crypto(t.code) => Error::new(
            ErrorCode::Tls,
            format!("TLS handshake with {peer} failed: {t}"),
        ),
        C::ConnectionClosed(c) if is_crypto(c.error_code) => Error::new(
            ErrorCode::Tls,
            format!("{peer} rejected the TLS handshake: {c}"),
        ),
        C::ConnectionClosed(c) if c.error_code == TransportErrorCode::CONNECTION_REFUSED => {
            Error::closed(format!(
                "{peer} refused the connection (it is at its connection limit)"
            ))
        }
        C::LocallyClosed => Error::closed(format!("connection to {peer} was closed")),
        C::TimedOut => Error::closed(format!("connection to {peer} timed out (peer silent)")),
        C::Reset => Error::closed(format!("{peer} reset the connection")),
        other => Error::closed(format!("connection to {peer} failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn loopback_includes_mapped_ipv4_and_nothing_else() {
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "192.168.1.2",
            "::ffff:10.0.0.1",
            "fe80::1",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }
}
